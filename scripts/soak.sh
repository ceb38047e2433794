#!/usr/bin/env bash
# Soak on real KVM (not part of scripts/test.sh, not a timed test; TESTING.md records its
# figures): 1000 VMs created, programmed from launch VMSAs, run and destroyed in one process with
# open descriptors and RSS shown flat from the 10th to the last; one VM with KVM's maximum vCPU
# count (1024 here) programmed from launch VMSAs and run; two `vmsa` main jobs (four vCPUs each,
# run and checked) at the same time on the same /dev/kvm.
#
#   bash scripts/soak.sh [VMS]
set -euo pipefail
cd "$(dirname "$0")/.."
vms=${1:-1000}
cargo build -q --release -p vmsa-kvm --example soak
cargo build -q --release --bin vmsa
echo "=== $vms VMs in one process, then one VM at the vCPU maximum"
target/release/examples/soak "$vms" 2

echo "=== two vmsa processes at once"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
target/release/vmsa >"$tmp/a" 2>&1 & a=$!
target/release/vmsa >"$tmp/b" 2>&1 & b=$!
ok=1
for p in "$a:a" "$b:b"; do
  if ! wait "${p%%:*}"; then echo "process ${p##*:} failed:"; cat "$tmp/${p##*:}"; ok=0; fi
  n=$(grep -c "27 of 27 as programmed" "$tmp/${p##*:}" || true)
  echo "process ${p##*:}: $n of 4 vCPUs reported their registers as programmed"
  [ "$n" = 4 ] || ok=0
done
[ $ok = 1 ] && echo "soak passed"
