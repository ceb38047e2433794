#!/usr/bin/env bash
# Builds the vmsa-wasm crate for wasm32-unknown-unknown and binds it for the page: writes
# wasm/web/pkg/{vmsa_wasm.js,vmsa_wasm_bg.wasm} and prints the .wasm size and gzip size. Fails
# when the .wasm is over its 128 KiB budget.
#
# The route (no rustup target needed): Debian's rustc-web, cargo-web and rust-web-src give a
# rustc with the standard library sources, so -Zbuild-std builds std for wasm32 (RUSTC_BOOTSTRAP
# unlocks -Z on that stable compiler), linked by rust-lld from lld-22. wasm-bindgen-cli must be
# the version Cargo.lock pins for the wasm-bindgen crate (scripts/test.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

budget=$((128 * 1024))
locked=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }')
if [ "$have" != "$locked" ]; then
  echo "wasm/build.sh: wasm-bindgen-cli $locked is needed (found '${have:-none}'):" >&2
  echo "  cargo install wasm-bindgen-cli --version $locked" >&2
  exit 1
fi

# A size-oriented release profile for this build only (the host profile keeps its settings):
# opt-level z, fat LTO, one codegen unit, panics as a bare trap (the core never panics on input;
# `-Cpanic=immediate-abort` drops the panic machinery, `-Zlocation-detail=none` its file names)
# and sha2's compact (looped, not unrolled) compression functions, which halve its code. Without
# reference types: Debian's binaryen 108 turns wasm-bindgen's externref table into a funcref one.
PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/wasm \
CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_PROFILE_RELEASE_LTO=true \
CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_PANIC=immediate-abort \
CARGO_PROFILE_RELEASE_DEBUG=0 \
RUSTFLAGS='-Ctarget-feature=-reference-types -Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none --cfg sha2_backend_soft="compact"' \
  /usr/bin/cargo build -q --release --locked -p vmsa-wasm --target wasm32-unknown-unknown \
    -Zbuild-std=std,panic_abort -Zpanic-immediate-abort

wasm-bindgen --target web --no-typescript --out-dir wasm/web/pkg \
  --remove-name-section --remove-producers-section \
  target/wasm/wasm32-unknown-unknown/release/vmsa_wasm.wasm

# binaryen's optimizer (Debian's binaryen), with the features rustc enables for wasm32 by default
# (reference types excepted, see above).
wasm-opt -Oz --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
  --enable-nontrapping-float-to-int --enable-multivalue \
  wasm/web/pkg/vmsa_wasm_bg.wasm -o wasm/web/pkg/vmsa_wasm_bg.wasm

# The second module, loaded by the page only when an attestation report is dropped: the report
# decoded, the neighbourhood search. Same profile; its own budget (256 KiB).
PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/wasm \
CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_PROFILE_RELEASE_LTO=true \
CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_PANIC=immediate-abort \
CARGO_PROFILE_RELEASE_DEBUG=0 \
RUSTFLAGS='-Ctarget-feature=-reference-types -Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none --cfg sha2_backend_soft="compact"' \
  /usr/bin/cargo build -q --release --locked -p vmsa-wasm-report --target wasm32-unknown-unknown \
    -Zbuild-std=std,panic_abort -Zpanic-immediate-abort
wasm-bindgen --target web --no-typescript --out-dir wasm/web/pkg-report \
  --remove-name-section --remove-producers-section \
  target/wasm/wasm32-unknown-unknown/release/vmsa_wasm_report.wasm
wasm-opt -Oz --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
  --enable-nontrapping-float-to-int --enable-multivalue \
  wasm/web/pkg-report/vmsa_wasm_report_bg.wasm -o wasm/web/pkg-report/vmsa_wasm_report_bg.wasm
report=wasm/web/pkg-report/vmsa_wasm_report_bg.wasm
rsize=$(stat -c %s "$report")
printf 'vmsa_wasm_report_bg.wasm: %d bytes (%.1f KiB), gzip -9: %d bytes; budget 256 KiB\n' \
  "$rsize" "$(echo "$rsize / 1024" | bc -l)" "$(gzip -9 -c "$report" | wc -c)"
if [ "$rsize" -gt $((256 * 1024)) ]; then
  echo "wasm/build.sh: $report is over its 256 KiB budget" >&2
  exit 1
fi

wasm=wasm/web/pkg/vmsa_wasm_bg.wasm
size=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
awk -v s="$size" -v g="$gz" -v b="$budget" 'BEGIN {
  printf "vmsa_wasm_bg.wasm: %d bytes (%.1f KiB), gzip -9: %d bytes (%.1f KiB); budget %d KiB\n", s, s / 1024, g, g / 1024, b / 1024 }'
if [ "$size" -gt "$budget" ]; then
  echo "wasm/build.sh: $wasm is over the 128 KiB budget" >&2
  exit 1
fi
