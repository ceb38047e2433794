#!/usr/bin/env bash
# A fuzzing campaign over every target in fuzz/: each one runs for SECONDS (default 3600, one
# CPU-hour) or RUNS executions (default 10 million), whichever comes first, from its committed seeds (fuzz/seeds/TARGET) and the repository's test data, without
# sanitizers (the core has no unsafe code; -s none is ~5x faster) but with debug assertions and
# overflow checks. Prints, per target, libFuzzer's run count, coverage and corpus size, the
# figures TESTING.md records. A crash stops the campaign; its input is under fuzz/artifacts/.
#
#   bash scripts/fuzz-campaign.sh [SECONDS] [TARGET...]
#   bash scripts/fuzz-campaign.sh 600 igvm igvm_diff
#
# With MINIMIZE=1 it then writes each target's minimized corpus back to fuzz/seeds/TARGET.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-3600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(ovmf ovmf_structured igvm igvm_diff vmsa report cert)

seed() { # the corpus a target starts from
  local t=$1
  mkdir -p "corpus/$t"
  [ -d "seeds/$t" ] && cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  case $t in
    ovmf) cp -n ../tests/data/sev-snp-measure/*.bin "corpus/$t/" ;;
    igvm | igvm_diff) cp -n seeds/igvm/*.igvm "corpus/$t/" ;;
    vmsa) cp -n ../tests/data/inspect/*.bin "corpus/$t/" ;;
    report) cp -n ../tests/data/reports/*.report.bin "corpus/$t/" ;;
    cert) cp -n ../tests/data/reports/*.der ../tests/data/reports/*.pem "corpus/$t/" ;;
  esac
}

cargo +nightly fuzz build -O -s none >/dev/null
for t in "${targets[@]}"; do
  seed "$t"
  log=$(mktemp)
  nice cargo +nightly fuzz run -O -s none "$t" "corpus/$t" -- \
    -max_total_time="$secs" -runs="${RUNS:-10000000}" -print_final_stats=1 >"$log" 2>&1 || {
    # The panic and the input's name; not libFuzzer's dump of the input's bytes.
    grep -E -A3 "panicked at|^SUMMARY|Test unit written to" "$log" | cut -c1-300 | head -20
    echo "$t: CRASH (input under fuzz/artifacts/$t; reproduce: cd fuzz && cargo +nightly fuzz run -O -s none $t FILE)"
    exit 1
  }
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*')
  ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*')
  printf '%-16s %6ss %12s runs  cov %5s  ft %6s  corpus %5s files\n' \
    "$t" "$secs" "$runs" "$cov" "$ft" "$(ls "corpus/$t" | wc -l)"
  rm -f "$log"
  if [ "${MINIMIZE:-0}" = 1 ]; then
    rm -rf "seeds/$t.new" && mkdir -p "seeds/$t.new"
    cargo +nightly fuzz cmin -O -s none "$t" "corpus/$t" >/dev/null 2>&1
    cp "corpus/$t"/* "seeds/$t.new/" && rm -rf "seeds/$t" && mv "seeds/$t.new" "seeds/$t"
  fi
done
