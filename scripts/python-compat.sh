#!/usr/bin/env bash
# The Python package `vmsa` against sev-snp-measure 0.0.13's own unit tests: builds the abi3
# wheel (maturin) into target/wheels, installs it into a virtual environment under
# target/python, takes the tests from sev-snp-measure's source distribution on PyPI (its code
# is not in this repository), changes only their imports (`from sevsnpmeasure` becomes
# `from vmsa.sevsnpmeasure`), gives them their fixtures from tests/data, and runs them; then
# this package's own tests (python/tests) and the in-process benchmark against the peer.
#
#   bash scripts/python-compat.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
py=${PYTHON:-python3}
venv=target/python/venv
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check 'maturin>=1.5,<2'
( cd python && PYO3_PYTHON="$repo/$venv/bin/python" "$repo/$venv/bin/maturin" build -q --release \
    -i "$repo/$venv/bin/python" --out "$repo/target/wheels" )
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
  "$(ls -t target/wheels/vmsa-*-abi3-*.whl | head -1)"
# The peer is installed for the benchmark at the end, after the tests that must not see it.
"$venv/bin/python" -m pip uninstall -q -y sev-snp-measure >/dev/null 2>&1 || true

# sev-snp-measure 0.0.13's tests, from its sdist, with their fixtures.
work=target/python/ssm-tests
rm -rf "$work" && mkdir -p "$work"
"$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
  sev-snp-measure==0.0.13 -d target/python/sdist
tar -xzf target/python/sdist/sev_snp_measure-0.0.13.tar.gz -C "$work" --strip-components=1 \
  sev_snp_measure-0.0.13/tests
sed -i 's/^from sevsnpmeasure/from vmsa.sevsnpmeasure/' "$work"/tests/test_*.py
if grep -n 'sevsnpmeasure' "$work"/tests/test_*.py | grep -v 'vmsa.sevsnpmeasure'; then
  echo "python-compat.sh: an import of sevsnpmeasure was not changed" >&2
  exit 1
fi
mkdir -p "$work/tests/fixtures" "$work/tests/keyfile"
cp tests/data/sev-snp-measure/ovmf_*_suffix.bin tests/data/svsm/svsm.bin \
  tests/data/svsm/svsm_ovmf.fd "$work/tests/fixtures/"
cp tests/data/sev-snp-measure/keyfile/*.pem "$work/tests/keyfile/"
# Not the installed sev-snp-measure: only vmsa.sevsnpmeasure is importable in the venv.
( cd "$work" && "$repo/$venv/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("sevsnpmeasure") is not None)' \
  && "$repo/$venv/bin/python" -m unittest discover -s tests -v )

# This package's own tests.
( cd python && "$repo/$venv/bin/python" -m unittest discover -s tests -v )

# The README's example, as written there, from the repository's root; its digest is
# `vmsa measure`'s.
python3 scripts/readme-example.py "## Use from Python" python > target/python/readme_example.py
printed=$("$venv/bin/python" target/python/readme_example.py)
echo "$printed"
got=$(printf '%s\n' "$printed" | head -1)
want=$(cargo run -q --release --bin vmsa -- measure --mode snp --vcpus 4 --vcpu-type EPYC-v4 \
  --ovmf tests/data/sev-snp-measure/ovmf_AmdSev_suffix.bin)
[ "$got" = "$want" ] || { echo "python-compat.sh: the README's example printed $got, not $want" >&2; exit 1; }
echo "the README's Python example: $got"

# The in-process benchmark against sev-snp-measure's own function (prints a ratio).
"$venv/bin/python" -m pip install -q --disable-pip-version-check sev-snp-measure==0.0.13
if [ -f /usr/share/OVMF/OVMF_CODE.fd ]; then
  "$venv/bin/python" python/bench.py /usr/share/OVMF/OVMF_CODE.fd
fi
