#!/usr/bin/env python3
"""Differential check of `vmsa measure` against sev-snp-measure 0.0.13 (the reference peer).

Runs both tools with the same arguments over a matrix of firmware images (every Debian `ovmf`
image and the two sev-snp-measure fixtures), modes, vCPU counts, CPU types, VMM types, guest
features and kernel/initrd/append, and compares their output byte for byte. Where the peer
silently measures firmware that cannot launch (SNP without `ASEV` metadata), vmsa must refuse
with exit code 1 instead; the script checks that too.

    scripts/diff-measure.py [--quick] [--vmsa target/release/vmsa] [--jobs N]
"""
import argparse
import collections
import concurrent.futures
import itertools
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "data" / "sev-snp-measure"
DEBIAN_IMAGES = [
    "/usr/share/OVMF/OVMF_CODE.fd",
    "/usr/share/OVMF/OVMF_CODE.secboot.fd",
    "/usr/share/OVMF/OVMF_CODE_4M.fd",
    "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
    "/usr/share/ovmf/OVMF.fd",
]
CPU_TYPES = [
    "EPYC", "EPYC-v1", "EPYC-v2", "EPYC-IBPB", "EPYC-v3", "EPYC-v4",
    "EPYC-Rome", "EPYC-Rome-v1", "EPYC-Rome-v2", "EPYC-Rome-v3",
    "EPYC-Milan", "EPYC-Milan-v1", "EPYC-Milan-v2", "EPYC-Genoa", "EPYC-Genoa-v1", "EPYC-Turin",
]


def has_metadata(path):
    return b"ASEV" in pathlib.Path(path).read_bytes()


def cases(quick, kernel, initrd):
    images = [p for p in DEBIAN_IMAGES if os.path.exists(p)]
    if len(images) < len(DEBIAN_IMAGES) and "ovmf" in os.environ.get("VMSA_REQUIRE", "").split(","):
        sys.exit("VMSA_REQUIRE names ovmf: Debian's images are missing")
    images += [str(FIXTURES / "ovmf_AmdSev_suffix.bin"), str(FIXTURES / "ovmf_OvmfX64_suffix.bin")]
    vcpu_counts = [1, 4, 64] if quick else [1, 2, 3, 4, 8, 16, 32, 64]
    cpu_cycle = itertools.cycle(CPU_TYPES)
    for image in images:
        yield ["--mode", "sev", "--ovmf", image]
        yield ["--mode", "snp:ovmf-hash", "--ovmf", image]
        for mode, vmm, vcpus in itertools.product(["seves", "snp"], ["QEMU", "ec2", "gce"], vcpu_counts):
            features = ["0x1", "0x21"] if mode == "snp" else ["0x1"]
            for gf in features:
                args = ["--mode", mode, "--ovmf", image, "--vcpus", str(vcpus), "--vmm-type", vmm]
                if vmm == "QEMU" or vcpus % 2:
                    args += ["--vcpu-type", next(cpu_cycle)]
                args += ["--guest-features", gf]
                yield args
    # Every CPU type, and signatures given three ways, on the real firmware.
    image = DEBIAN_IMAGES[0]
    for cpu in CPU_TYPES:
        yield ["--mode", "snp", "--ovmf", image, "--vcpus", "2", "--vcpu-type", cpu]
    yield ["--mode", "snp", "--ovmf", image, "--vcpus", "2", "--vcpu-sig", "0xa00f11"]
    yield ["--mode", "snp", "--ovmf", image, "--vcpus", "2", "--vcpu-sig", "10489617"]
    yield ["--mode", "snp", "--ovmf", image, "--vcpus", "2", "--vcpu-family", "25", "--vcpu-model", "17", "--vcpu-stepping", "0"]
    yield ["--mode", "seves", "--ovmf", image, "--vcpus", "3", "--vcpu-family", "26", "--vcpu-model", "0", "--vcpu-stepping", "0"]
    # Kernel, initrd and command line on the AmdSev fixture (the only image with a hash table).
    amd = str(FIXTURES / "ovmf_AmdSev_suffix.bin")
    for mode in ["sev", "seves", "snp"]:
        for extra in (
            ["--kernel", kernel],
            ["--kernel", kernel, "--initrd", initrd],
            ["--kernel", kernel, "--append", "console=ttyS0 root=/dev/vda1"],
            ["--kernel", kernel, "--initrd", initrd, "--append", ""],
        ):
            args = ["--mode", mode, "--ovmf", amd] + extra
            if mode != "sev":
                args += ["--vcpus", "4", "--vcpu-type", "EPYC-Milan"]
            yield args
    for fmt in ["hex", "base64"]:
        yield ["--mode", "snp", "--ovmf", image, "--vcpus", "4", "--vcpu-type", "EPYC-v4", "--output-format", fmt, "-v"]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def names_qemu_reason(err):
    """Whether a refusal of ours names what QEMU or KVM says or does (their source, cited)."""
    return "QEMU" in err or "KVM" in err


def check(vmsa, args):
    """(status, message): "equal", "peer-wrong" (the peer measures what cannot launch and we
    refuse, naming QEMU's reason), "both-refuse" (a pass only when our refusal names QEMU's or
    KVM's reason), or "MISMATCH"."""
    peer = run(["sev-snp-measure"] + args)
    ours = run([vmsa, "measure"] + args)
    mode = args[args.index("--mode") + 1]
    image = args[args.index("--ovmf") + 1]
    if mode == "snp" and not has_metadata(image):
        # The peer measures an SNP guest that cannot launch; vmsa must refuse it.
        if ours[0] == 1 and "ASEV" in ours[2] and names_qemu_reason(ours[2]):
            return "peer-wrong", None
        return "MISMATCH", f"expected a refusal (no ASEV metadata), got exit {ours[0]}: {ours[1]}{ours[2]}"
    if peer[0] != 0:
        if ours[0] != 0 and names_qemu_reason(ours[2]):
            return "both-refuse", None
        return "MISMATCH", (f"peer failed (exit {peer[0]}: {peer[2].strip()}), vmsa exit {ours[0]}: "
                            f"{ours[2].strip()} (a shared refusal must name QEMU's reason)")
    if ours[0] != 0 or ours[1] != peer[1]:
        return "MISMATCH", f"peer {peer[1].strip()!r}, vmsa exit {ours[0]} {ours[1].strip()!r} {ours[2].strip()}"
    return "equal", None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smaller matrix (CI)")
    ap.add_argument("--vmsa", default=str(ROOT / "target" / "release" / "vmsa"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kernel = pathlib.Path(tmp, "kernel")
        kernel.write_bytes(bytes(range(256)) * 1000)
        initrd = pathlib.Path(tmp, "initrd")
        initrd.write_bytes(b"initrd" * 5000)
        all_cases = list(cases(a.quick, str(kernel), str(initrd)))
        with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
            results = list(pool.map(lambda c: (c, check(a.vmsa, c)), all_cases))
    failed = [(c, m) for c, (s, m) in results if s == "MISMATCH"]
    for c, m in failed:
        print("MISMATCH:", " ".join(c), "\n   ", m)
    counts = collections.Counter(s for _, (s, _) in results)
    print(f"{len(results) - len(failed)} passed ({counts['equal']} equal digests, "
          f"{counts['peer-wrong']} refused where the peer measures what cannot launch, "
          f"{counts['both-refuse']} refused by both, our refusal naming QEMU's reason), "
          f"{len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
