#!/usr/bin/env bash
# The project's full test command: installs what the tests need on a fresh Debian machine, then
# runs formatting, lints, every test, the no_std builds, the browser test and the fuzz smoke runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# Every test dependency this command installs is required: a test whose dependency is missing
# fails instead of skipping (tests/common/require.rs). Set before the first cargo command, as
# host-kvm's build script reads it.
export VMSA_REQUIRE=${VMSA_REQUIRE-kvm,qemu,peer,ovmf,avx2}

# Disk: incremental compilation's caches are of no use to a one-shot run (about 1 GiB), and each
# step's free space is printed, so a full disk shows where it filled.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL-0}
step() { printf '\n=== %s  [%s free]\n' "$*" "$(df -h --output=avail . | tail -1 | tr -d ' ')"; }

# --- installs -----------------------------------------------------------------------------
step "install: Debian packages"
# (libssl-dev, pkg-config: the `sev` crate, a peer compared in attest/tests, builds on OpenSSL.)
APT_PACKAGES=(ovmf qemu-system-x86 rustc-web cargo-web rust-web-src lld-22 chromium libssl-dev pkg-config)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
step "install: sev-snp-measure 0.0.13 (reference peer)"
# (awk reads all of pip's output: `grep -q` would close the pipe early and, under pipefail, fail.)
[ "$(python3 -m pip show sev-snp-measure 2>/dev/null | awk '/^Version:/ { print $2 }')" = 0.0.13 ] \
  || python3 -m pip install -q --disable-pip-version-check sev-snp-measure==0.0.13
# >>> extra installs (add yours here) >>>
step "install: cbindgen (the C header of libvmsa_capi is checked to be current)"
command -v cbindgen >/dev/null 2>&1 || cargo install -q --locked cbindgen
step "install: cargo-fuzz (fuzz smoke runs, nightly toolchain)"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install -q --locked cargo-fuzz
rustup toolchain list | grep -q '^nightly' || rustup toolchain install -q --profile minimal nightly
step "install: wasm tools (binaryen, wasm-bindgen-cli = Cargo.lock's wasm-bindgen) and the browser test's npm packages"
dpkg -s binaryen >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binaryen >/dev/null; }
wbg=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
# Not --locked: the CLI's own lock file pins a webpki-roots the registry mirror does not carry.
[ "$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }')" = "$wbg" ] \
  || cargo install -q wasm-bindgen-cli --version "$wbg"
( cd wasm/e2e && npm ci --no-audit --no-fund --loglevel=error )
# <<< extra installs <<<

# --- checks -------------------------------------------------------------------------------
step "the repository stands alone: no tracked file refers to a path outside it"
python3 scripts/stands-alone.py
step "module graph: no import loops between sibling modules (ARCHITECTURE.md)"
python3 scripts/module-graph.py
step "cargo fmt --check"
cargo fmt --all -- --check
( cd fuzz && cargo fmt -- --check )
step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
step "no_std: vmsa-core alone for x86_64-unknown-none and wasm32-unknown-unknown"
for target in x86_64-unknown-none wasm32-unknown-unknown; do
  ( cd core && PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
      CARGO_TARGET_DIR=../target/nostd /usr/bin/cargo build -q --release \
      -Zbuild-std=core,alloc --target "$target" )
  ( cd core && PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
      CARGO_TARGET_DIR=../target/nostd /usr/bin/cargo build -q --release \
      -Zbuild-std=core,alloc --target "$target" --features alloc )
  echo "vmsa-core builds for $target (no features, and alloc)"
done
rm -rf target/nostd  # (a build check only: nothing later uses it)
step "cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc -q --workspace --no-deps
step "cargo test --workspace"
# Under VMSA_REQUIRE (above) a missing /dev/kvm, QEMU, peer, OVMF image or AVX2 fails the
# tests that need it; say it here first, where nobody can miss it.
[ -e /dev/kvm ] || echo "no /dev/kvm on this machine: the KVM tests will fail (VMSA_REQUIRE=$VMSA_REQUIRE)"
cargo test --workspace --all-targets
cargo test --workspace --doc
# >>> extra steps (add yours here) >>>
step "known answers: tests/data/sev-snp-measure/vectors.json re-checked against the installed sev-snp-measure"
python3 scripts/recheck-vectors.py
step "differential: vmsa reset vs sev-snp-measure --dump-vmsa (quick matrix; the wide one: scripts/diff-sev-snp-measure.py)"
cargo build -q --bin vmsa
python3 scripts/diff-sev-snp-measure.py --quick
step "differential: vmsa measure vs sev-snp-measure (quick matrix; the wide one: scripts/diff-measure.py)"
cargo build -q --release --bin vmsa
python3 scripts/diff-measure.py --quick --vmsa target/release/vmsa
step "soak on real KVM: 1000 VMs in one process (descriptors and RSS flat), 1024 vCPUs, two vmsa processes at once"
bash scripts/soak.sh 1000
step "fuzz smoke: every target for 15 s from its committed seeds (the campaign: scripts/fuzz-campaign.sh)"
bash scripts/fuzz-campaign.sh 15
rm -rf fuzz/target  # (the sanitized fuzz builds: nothing later uses them)
step "wasm: vmsa-wasm for wasm32-unknown-unknown (128 KiB budget), then the page in Debian's headless Chromium"
bash wasm/build.sh
cargo build -q --bin vmsa
( cd wasm/e2e && node --test --test-reporter=spec e2e.test.js )
rm -rf target/wasm  # (wasm/web/pkg* hold what the page serves)
step "C: libvmsa_capi's header current; a C program doing QEMU's SEV steps under ASan and UBSan gives vmsa measure's digests; pkg-config"
bash scripts/capi-test.sh
step "python: the vmsa wheel (abi3) against sev-snp-measure 0.0.13's own unit tests (imports changed only), its own tests, the in-process benchmark"
bash scripts/python-compat.sh
step "crates: cargo package of the six publishable crates in dependency order; cargo install --path .; completions and man pages"
# A crate of the same version packaged before (its sources extracted from cargo's local overlay
# registry into CARGO_HOME, its build in a target directory) would be verified against instead
# of this tree's: both are cleared, and the packages build in their own target directory.
rm -rf target/package-build "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/vmsa-* \
  "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/-*/vmsa-*
CARGO_TARGET_DIR=target/package-build cargo package -p vmsa-core -p vmsa-pagehash -p vmsa-attest \
  -p vmsa-solve -p vmsa-kvm -p vmsa > target/package.log 2>&1 || { cat target/package.log; exit 1; }
grep -E '^ *(Packaged|Verifying)' target/package.log
rm -rf target/package-build  # (the packages' verification builds: nothing later uses them)
cargo install -q --locked --path . --root target/install --target-dir target
target/install/bin/vmsa --version
target/install/bin/vmsa generate completions bash | bash -n
target/install/bin/vmsa generate man --out target/install/share/man/man1
# <<< extra steps <<<
step "all checks passed"
