#!/usr/bin/env bash
# Line coverage of the parser modules reached by each fuzz target's corpus (`cargo fuzz
# coverage`, LLVM source-based coverage): the figures TESTING.md records. Needs llvm-profdata
# and llvm-cov of the nightly's LLVM major version (Debian: llvm-22) in the nightly sysroot or
# on PATH as llvm-profdata-22/llvm-cov-22.
#
#   bash scripts/fuzz-coverage.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(ovmf ovmf_structured igvm igvm_diff vmsa report cert)
major=$(rustc +nightly -vV | awk '/^LLVM version/ { split($3, v, "."); print v[1] }')
bin=$(rustc +nightly --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin
for tool in llvm-profdata llvm-cov; do
  [ -e "$bin/$tool" ] || ln -sf "$(command -v "$tool-$major")" "$bin/$tool"
done
for t in "${targets[@]}"; do
  cargo +nightly fuzz coverage -s none "$t" "corpus/$t" >/dev/null 2>&1
  exe=target/x86_64-unknown-linux-gnu/coverage/x86_64-unknown-linux-gnu/release/$t
  echo "== $t ($(ls "corpus/$t" | wc -l) inputs): lines covered per module"
  # Columns: file, regions (3), functions (3), lines, missed lines, line cover, branches (3).
  "$bin/llvm-cov" report "$exe" -instr-profile="coverage/$t/coverage.profdata" \
    -ignore-filename-regex='(\.cargo|rustc|fuzz_targets|fuzz/src)' 2>/dev/null \
    | awk -v pat="${MODULES:-(^|/)(ovmf/|igvm/|report|vmsa|segment|launch/)|attest/src/|TOTAL}" \
      '$1 ~ pat && NF >= 10 { printf "  %-28s %5d/%-5d lines %s\n", $1, $8 - $9, $8, $10 }'
done
