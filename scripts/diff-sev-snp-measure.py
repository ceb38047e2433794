#!/usr/bin/env python3
"""Differential check of `vmsa reset` against `sev-snp-measure --dump-vmsa` (0.0.13, PyPI).

Runs both tools over a matrix of firmware images, modes, VMM types, CPU types, guest features
and vCPU counts and compares every VMSA page byte for byte. Where sev-snp-measure produces pages
for firmware that cannot launch (SNP on an image without ASEV metadata), `vmsa reset` must
refuse, with the reason; those cases are counted separately as peer defects.

  scripts/diff-sev-snp-measure.py                 # the wide matrix (a few minutes)
  scripts/diff-sev-snp-measure.py --quick         # a small matrix for CI
  scripts/diff-sev-snp-measure.py --goldens FILE  # (re)write the golden hash table

The golden table (tests/data/sev-snp-measure-vmsa.tsv) holds, per image/mode/VMM/CPU type/
features, the SHA-256 of the BSP page and of the AP page sev-snp-measure dumps with 2 vCPUs.
"""
import argparse
import concurrent.futures
import hashlib
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "data", "sev-snp-measure")
IMAGES = [
    "/usr/share/OVMF/OVMF_CODE.fd",
    "/usr/share/OVMF/OVMF_CODE.secboot.fd",
    "/usr/share/OVMF/OVMF_CODE_4M.fd",
    "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
    "/usr/share/ovmf/OVMF.fd",
    os.path.join(FIXTURES, "ovmf_AmdSev_suffix.bin"),
    os.path.join(FIXTURES, "ovmf_OvmfX64_suffix.bin"),
]
# sevsnpmeasure/vcpu_types.py CPU_SIGS, every name.
CPU_TYPES = [
    "EPYC", "EPYC-v1", "EPYC-v2", "EPYC-IBPB", "EPYC-v3", "EPYC-v4",
    "EPYC-Rome", "EPYC-Rome-v1", "EPYC-Rome-v2", "EPYC-Rome-v3",
    "EPYC-Milan", "EPYC-Milan-v1", "EPYC-Milan-v2",
    "EPYC-Genoa", "EPYC-Genoa-v1", "EPYC-Turin",
]
VMMS = ["QEMU", "ec2", "gce"]
FEATURES = ["0x1", "0x21"]


def image_name(path):
    base = os.path.basename(path)
    return base if "fixtures" not in path else "fixture:" + base


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_peer(image, mode, vmm, cpu, features, vcpus):
    """sev-snp-measure --dump-vmsa in a temp dir; returns (pages, error)."""
    with tempfile.TemporaryDirectory() as d:
        cmd = ["sev-snp-measure", "--mode", mode, "--vcpus", str(vcpus), "--ovmf", image,
               "--vmm-type", vmm, "--vcpu-type", cpu, "--dump-vmsa"]
        if features is not None:
            cmd += ["--guest-features", features]
        p = subprocess.run(cmd, cwd=d, capture_output=True, text=True)
        if p.returncode != 0:
            return None, (p.stderr.strip().splitlines() or ["?"])[-1]
        return [open(os.path.join(d, f"vmsa{i}.bin"), "rb").read() for i in range(vcpus)], None


def run_ours(vmsa, image, mode, vmm, cpu, features, vcpus):
    with tempfile.TemporaryDirectory() as d:
        cmd = [vmsa, "reset", "--ovmf", image, "--vcpus", str(vcpus),
               "--mode", "sev-es" if mode == "seves" else "snp",
               "--vmm-type", vmm.lower(), "--vcpu-type", cpu, "--out", d]
        if features is not None:
            cmd += ["--guest-features", features]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            return None, p.stderr.strip()
        return [open(os.path.join(d, f"vmsa{i}.bin"), "rb").read() for i in range(vcpus)], None


def has_asev(image):
    with open(image, "rb") as f:
        return b"ASEV" in f.read()


def configs(images, cpus, vcpu_counts):
    for image in images:
        for vmm in VMMS:
            for cpu in cpus:
                for vcpus in vcpu_counts:
                    yield (image, "seves", vmm, cpu, None, vcpus)
                    for feat in FEATURES:
                        yield (image, "snp", vmm, cpu, feat, vcpus)


def check(vmsa, cfg):
    image, mode, vmm, cpu, feat, vcpus = cfg
    peer, peer_err = run_peer(*cfg)
    ours, our_err = run_ours(vmsa, *cfg)
    label = f"{image_name(image)} {mode} {vmm} {cpu} features={feat} vcpus={vcpus}"
    if peer is not None and ours is not None:
        for i, (a, b) in enumerate(zip(peer, ours)):
            if a != b:
                return "MISMATCH", f"{label}: vmsa{i}.bin differs"
        return "ok", label
    if peer is not None and ours is None:
        if mode == "snp" and not has_asev(image) and "ASEV" in our_err:
            return "peer-wrong", f"{label}: sev-snp-measure measures it, vmsa refuses: {our_err}"
        return "MISMATCH", f"{label}: we refuse ({our_err}) but sev-snp-measure does not"
    if peer is None and ours is not None:
        return "MISMATCH", f"{label}: sev-snp-measure fails ({peer_err}) but we do not"
    # Both refuse: a pass only when our refusal names QEMU's or KVM's reason.
    if "QEMU" in our_err or "KVM" in our_err:
        return "both-refuse", f"{label}: peer: {peer_err}; vmsa: {our_err}"
    return "MISMATCH", f"{label}: both refuse, but ours names no QEMU reason: {our_err}"


def goldens(out):
    rows = []
    cfgs = list(configs(IMAGES, CPU_TYPES, [2]))
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        results = list(ex.map(lambda c: (c, run_peer(*c)), cfgs))
    for (image, mode, vmm, cpu, feat, _), (pages, err) in results:
        if pages is None:
            sys.exit(f"sev-snp-measure failed for {image} {mode} {vmm} {cpu}: {err}")
        rows.append("\t".join([
            image_name(image), sha256(image), mode, vmm, cpu, feat or "-",
            hashlib.sha256(pages[0]).hexdigest(), hashlib.sha256(pages[1]).hexdigest(),
        ]))
    with open(out, "w") as f:
        f.write("# Made by scripts/diff-sev-snp-measure.py --goldens with sev-snp-measure 0.0.13 "
                "(PyPI): --dump-vmsa --vcpus 2, SHA-256 of vmsa0.bin (BSP) and vmsa1.bin (AP).\n")
        f.write("# image\timage_sha256\tmode\tvmm\tvcpu_type\tguest_features\tbsp_sha256\tap_sha256\n")
        f.write("\n".join(rows) + "\n")
    print(f"wrote {len(rows)} rows to {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vmsa", default=os.path.join(ROOT, "target", "debug", "vmsa"))
    ap.add_argument("--quick", action="store_true", help="a small matrix (CI)")
    ap.add_argument("--goldens", metavar="FILE", help="write the golden hash table and exit")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    if args.goldens:
        return goldens(args.goldens)
    images = [i for i in IMAGES if os.path.exists(i)]
    missing = sorted(set(IMAGES) - set(images))
    if missing:
        print("SKIPPED images (not installed):", ", ".join(missing), file=sys.stderr)
        if "ovmf" in os.environ.get("VMSA_REQUIRE", "").split(","):
            sys.exit("VMSA_REQUIRE names ovmf: Debian's images are missing")
    if args.quick:
        cfgs = list(configs(images, ["EPYC-v4"], [3]))
    else:
        # Every CPU type at 2 and 5 vCPUs, and every count 1..64 for EPYC-v4.
        cfgs = list(configs(images, CPU_TYPES, [2, 5]))
        cfgs += [c for c in configs(images, ["EPYC-v4"], range(1, 65)) if c[5] not in (2, 5)]
    counts = {}
    bad = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        for status, msg in ex.map(lambda c: check(args.vmsa, c), cfgs):
            counts[status] = counts.get(status, 0) + 1
            if status == "MISMATCH":
                bad.append(msg)
            elif status == "peer-wrong" and counts[status] <= 3:
                print("peer defect:", msg)
    print(f"{len(cfgs)} configurations: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for m in bad[:50]:
        print("MISMATCH:", m)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
