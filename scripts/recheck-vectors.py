#!/usr/bin/env python3
"""Re-checks tests/data/sev-snp-measure/vectors.json against the installed sev-snp-measure.

The known-answer file was written out from sev-snp-measure 0.0.13's own test suite; this script
runs the installed tool on every vector (and the snp:ovmf-hash vector, and the must-fail cases)
with the same arguments and checks it prints the recorded digest (or fails), and that the two
fixtures are the files the digests were made from (SHA-256). So the file cannot drift from the
peer without this failing. Run by scripts/test.sh; exit 1 on any difference.
"""
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "sev-snp-measure"
PEER_MODE = {"snp": "snp", "sev-es": "seves", "sev": "sev"}
PEER_VMM = {"qemu": "QEMU", "ec2": "ec2", "gce": "gce"}


def peer(args):
    p = subprocess.run(["sev-snp-measure"] + args, capture_output=True, text=True)
    return p.returncode, p.stdout.strip(), (p.stderr.strip().splitlines() or [""])[-1]


def vector_args(v, empty):
    a = ["--mode", PEER_MODE[v["mode"]], "--ovmf", str(DATA / v["firmware"])]
    if v["mode"] != "sev":
        a += ["--vcpus", str(v["vcpus"])]
    if v.get("vmm") is not None:
        a += ["--vmm-type", PEER_VMM[v["vmm"]]]
    for key, flag in [("vcpu_sig", "--vcpu-sig"),
                      ("guest_features", "--guest-features"), ("snp_ovmf_hash", "--snp-ovmf-hash"),
                      ("append", "--append")]:
        if v.get(key) is not None:
            a += [flag, v[key]]
    for key, flag in [("kernel", "--kernel"), ("initrd", "--initrd")]:
        if v.get(key) is not None:
            a += [flag, v[key] or empty]
    return a


def main():
    v = json.loads((DATA / "vectors.json").read_text())
    bad = []
    for name, want in v["fixtures"].items():
        got = hashlib.sha256((DATA / name).read_bytes()).hexdigest()
        if got != want:
            bad.append(f"fixture {name}: sha256 {got}, recorded {want}")
    n = 0
    with tempfile.TemporaryDirectory() as d:
        empty = os.path.join(d, "empty")
        open(empty, "wb").close()
        for vec in v["vectors"]:
            code, out, err = peer(vector_args(vec, empty))
            n += 1
            if code != 0 or out != vec["digest"]:
                bad.append(f"{vec['name']}: peer exit {code} {out!r} {err}, recorded {vec['digest']}")
        for h in v["snp_ovmf_hash"]:
            code, out, err = peer(["--mode", "snp:ovmf-hash", "--ovmf", str(DATA / h["firmware"])])
            n += 1
            if code != 0 or out != h["digest"]:
                bad.append(f"snp:ovmf-hash {h['firmware']}: peer {out!r} {err}, recorded {h['digest']}")
        for f in v["must_fail"]:
            a = ["--mode", PEER_MODE[f["mode"]], "--ovmf", str(DATA / f["firmware"])]
            if f["mode"] != "sev":
                a += ["--vcpus", "1", "--vcpu-type", "EPYC-v4"]
            if f.get("kernel") is not None:
                a += ["--kernel", f["kernel"] or empty]
            code, out, err = peer(a)
            n += 1
            if code == 0:
                bad.append(f"must-fail {f}: the peer printed {out!r}")
    version = subprocess.run(["sev-snp-measure", "--version"], capture_output=True, text=True).stdout.strip()
    for b in bad:
        print("DIFFERS:", b)
    print(f"{n} known answers re-checked against the installed sev-snp-measure ({version}): "
          f"{n - len(bad)} as recorded, {len(bad)} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
