#!/usr/bin/env bash
# libvmsa_capi from C: the header capi/include/vmsa.h must be what cbindgen generates from
# capi/src/lib.rs now; capi/tests/qemu_flow.c, built with AddressSanitizer and UBSan against the
# static library, does what QEMU's SEV code does (firmware, every vCPU's VMSA, its fields, the
# check against KVM, the digest) and its digest must be `vmsa measure`'s; then the same program
# built through the pkg-config file against the shared library.
#
#   bash scripts/capi-test.sh [FIRMWARE]
set -euo pipefail
cd "$(dirname "$0")/.."
fw=${1:-/usr/share/OVMF/OVMF_CODE.fd}
out=target/capi
mkdir -p "$out"

cbindgen --quiet --config capi/cbindgen.toml --crate vmsa-capi --output "$out/vmsa.h" 2>/dev/null
if ! diff -u capi/include/vmsa.h "$out/vmsa.h"; then
  echo "capi-test.sh: capi/include/vmsa.h is not current; regenerate it:" >&2
  echo "  (cd capi && cbindgen --config cbindgen.toml --crate vmsa-capi --output include/vmsa.h)" >&2
  exit 1
fi

cargo build -q --release -p vmsa-capi
cargo build -q --release --bin vmsa
cc -std=c11 -Wall -Wextra -Werror -g -fsanitize=address,undefined -fno-sanitize-recover=all \
  -fno-omit-frame-pointer -Icapi/include capi/tests/qemu_flow.c target/release/libvmsa_capi.a \
  -lpthread -ldl -lm -o "$out/qemu_flow_asan"
for cfg in "4 0x800f12" "1 0xa10f11" "64 0xa00f11"; do
  set -- $cfg
  got=$(ASAN_OPTIONS=detect_leaks=1 "$out/qemu_flow_asan" "$fw" "$1" "$2" | awk '/^digest / { print $2 }')
  want=$(target/release/vmsa measure --mode snp --vcpus "$1" --vcpu-sig "$2" --ovmf "$fw")
  [ "$got" = "$want" ] || { echo "capi-test.sh: $1 vCPUs $2: C $got, vmsa measure $want" >&2; exit 1; }
  echo "C (ASan, UBSan) = vmsa measure for $1 vCPUs, $2: $got"
done

# pkg-config, against the shared library.
sed -e "s|@PREFIX@|$PWD/$out/prefix|" -e "s|@VERSION@|$(awk -F'"' '/^version/ { print $2; exit }' capi/Cargo.toml)|" \
  capi/vmsa.pc.in > "$out/vmsa.pc"
mkdir -p "$out/prefix/lib" "$out/prefix/include"
cp target/release/libvmsa_capi.so "$out/prefix/lib/"
cp capi/include/vmsa.h "$out/prefix/include/"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror capi/tests/qemu_flow.c $(PKG_CONFIG_PATH="$out" pkg-config --cflags --libs vmsa) \
  -Wl,-rpath,"$PWD/$out/prefix/lib" -o "$out/qemu_flow_shared"
got=$("$out/qemu_flow_shared" "$fw" 4 0x800f12 | awk '/^digest / { print $2 }')
[ "$got" = "$(target/release/vmsa measure --mode snp --vcpus 4 --vcpu-sig 0x800f12 --ovmf "$fw")" ]
echo "pkg-config build against the shared library: the same digest"

# The README's example, as written there.
python3 scripts/readme-example.py "## Use from C" c > "$out/readme_example.c"
cc -std=c11 -Wall -Wextra -Werror -g -fsanitize=address,undefined -fno-sanitize-recover=all \
  -Icapi/include "$out/readme_example.c" target/release/libvmsa_capi.a -lpthread -ldl -lm \
  -o "$out/readme_example"
got=$("$out/readme_example")
want=$(target/release/vmsa measure --mode snp --vcpus 4 --vcpu-type EPYC-v4 \
  --ovmf tests/data/sev-snp-measure/ovmf_AmdSev_suffix.bin)
[ "$got" = "$want" ] || { echo "capi-test.sh: the README's C example printed $got, not $want" >&2; exit 1; }
echo "the README's C example (ASan, UBSan): $got"
