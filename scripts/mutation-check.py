#!/usr/bin/env python3
"""Mutation check: does the test suite notice when the core is wrong?

Applies each single-point mutation below to a copy of the repository, one at a time, runs the
tests, and reports whether they fail ("killed", good) or pass ("SURVIVED": a claim the tests do
not anchor). The mutations are the kinds of mistakes an exact VMSA tool must not make unseen:
field offsets, attribute shifts, reset values, page types, section order, header kinds, CPU
signature bits, refusals. TESTING.md records the table.

  python3 scripts/mutation-check.py                 # the working tree
  python3 scripts/mutation-check.py --rev 039b722   # a commit (the table's "before")
  python3 scripts/mutation-check.py --only mxcsr-reset,dr7-refusal

The copy shares one target directory (target/mutants), so each mutant rebuilds only the core
and what depends on it. Tests run with VMSA_REQUIRE as in scripts/test.sh. Exit 1 if any
mutation survives. Not part of scripts/test.sh (about two minutes per mutant here).
"""
import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

# (name, file, [(old, new), ...]): each `old` must occur exactly once in the file.
MUTATIONS = [
    ("vmsa-rsi-rdi-swapped", "core/src/vmsa.rs",
     [("0x330 rsi RSI", "0x330 rdi RDI"), ("0x338 rdi RDI", "0x338 rsi RSI")]),
    ("vmsa-cr3-cr0-swapped", "core/src/vmsa.rs",
     [("0x150 cr3 CR3", "0x150 cr0 CR0"), ("0x158 cr0 CR0", "0x158 cr3 CR3")]),
    ("igvm-corim-kinds-swapped", "core/src/igvm/header.rs",
     [("                Header::CorimDocument(corim)\n            } else {\n                Header::CorimSignature(corim)",
       "                Header::CorimSignature(corim)\n            } else {\n                Header::CorimDocument(corim)")]),
    ("igvm-vp-index-ignored", "core/src/igvm/header.rs",
     [("        vp_index: h.vp_index,", "        vp_index: 0,")]),
    ("mxcsr-reset", "core/src/arch.rs",
     [("MXCSR_RESET: u32 = 0x1f80", "MXCSR_RESET: u32 = 0x1f81")]),
    ("dr6-reset", "core/src/arch.rs",
     [("DR6_RESET: u64 = 0xffff_0ff0", "DR6_RESET: u64 = 0xffff_0ff1")]),
    ("pat-reset", "core/src/arch.rs",
     [("PAT_RESET: u64 = 0x0007_0406_0007_0406", "PAT_RESET: u64 = 0x0007_0406_0007_0407")]),
    ("cr0-reset-without-et", "core/src/arch.rs",
     [("Cr0::CD.bits() | Cr0::NW.bits() | Cr0::ET.bits()", "Cr0::CD.bits() | Cr0::NW.bits()")]),
    ("igvm-attribute-shift", "core/src/segment.rs",
     [("Ok(Self((attributes & 0x00ff) | ((attributes >> 4) & 0x0f00)))",
       "Ok(Self((attributes & 0x00ff) | ((attributes >> 3) & 0x0f00)))")]),
    ("kvm-attribute-shift", "core/src/segment.rs",
     [("((flags & 0x00f0_0000) >> 12)", "((flags & 0x00f0_0000) >> 11)")]),
    ("page-types-secrets-cpuid-swapped", "core/src/page.rs",
     [("pub const SECRETS: Self = Self(5);", "pub const SECRETS: Self = Self(6);"),
      ("pub const CPUID: Self = Self(6);", "pub const CPUID: Self = Self(5);")]),
    ("ec2-cpuid-deferral-reversed", "core/src/launch/ovmf.rs",
     [("    in_order\n        .chain(deferred)", "    deferred\n        .chain(in_order)")]),
    ("cpu-signature-model-bits", "core/src/cpu.rs",
     [("(model & 0xf) << 4", "(model & 0xf) << 5")]),
    ("vmsa-gpa", "core/src/page.rs",
     [("VMSA_GPA: u64 = 0xFFFF_FFFF_F000", "VMSA_GPA: u64 = 0xFFFF_FFFE_F000")]),
    ("dr7-refusal-dropped", "core/src/kvm/refusal.rs",
     [("    if dr7 & !DR7_RESET != 0 {", "    if dr7 & !DR7_RESET == 1 {")]),
    ("snp-bit-refusal-dropped", "core/src/kvm/refusal.rs",
     [("        SevMode::Snp if !snp_bit => Err(Refusal::SnpActiveMissing(features)),\n", "")]),
]


def copy_tree(src_rev, dest):
    if src_rev:
        archive = subprocess.run(["git", "archive", src_rev], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
        return
    files = subprocess.run(["git", "ls-files", "-z", "-c", "-o", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        s = ROOT / f
        if s.is_file():
            d = dest / f
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)


def run_tests(tree, env):
    cmd = ["cargo", "test", "-q", "--workspace", "--lib", "--tests", "--no-fail-fast"]
    p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    out = p.stdout + p.stderr
    failed = re.findall(r"^---- (\S+) stdout ----$", out, re.M)
    # A test binary that crashes (a stack overflow, an abort) names no test: name the binary.
    failed += [f"[{t}]" for t in re.findall(r"to rerun pass `([^`]+)`", out)]
    compile_error = "error: could not compile" in out
    return p.returncode, failed, compile_error, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", help="a commit to mutate instead of the working tree")
    ap.add_argument("--only", help="comma list of mutation names")
    a = ap.parse_args()
    only = set(a.only.split(",")) if a.only else None
    env = dict(os.environ)
    env.setdefault("VMSA_REQUIRE", "kvm,qemu,peer,ovmf,avx2")
    env["CARGO_TARGET_DIR"] = str(ROOT / "target" / "mutants")
    env["CARGO_TERM_COLOR"] = "never"
    rows = []
    with tempfile.TemporaryDirectory(prefix="vmsa-mutants-") as tmp:
        tree = pathlib.Path(tmp)
        copy_tree(a.rev, tree)
        code, baseline, cerr, out = run_tests(tree, env)
        if cerr or (code != 0 and not baseline):
            print(out[-4000:])
            sys.exit("the unmutated tree does not build or its tests do not run: nothing to measure")
        if baseline:
            # A mutant is killed only by a test that passed unmutated.
            print(f"the unmutated tree already fails {len(baseline)} tests: {', '.join(baseline)}")
        for name, rel, edits in MUTATIONS:
            if only and name not in only:
                continue
            path = tree / rel
            original = path.read_text()
            text = original
            missing = [old for old, _ in edits if text.count(old) != 1]
            if missing:
                rows.append((name, "n/a", f"not applicable: {missing[0][:40]!r} not found once"))
                print(f"{name:36} n/a", flush=True)
                continue
            for old, new in edits:
                text = text.replace(old, new)
            path.write_text(text)
            t = time.time()
            try:
                code, failed, cerr, _ = run_tests(tree, env)
            finally:
                path.write_text(original)
            if cerr:
                verdict, detail = "killed", "does not compile"
            elif set(failed) - set(baseline):
                new_failures = [f for f in failed if f not in baseline]
                verdict, detail = "killed", f"{len(new_failures)} tests fail: " + ", ".join(new_failures[:4])
            else:
                verdict, detail = "SURVIVED", "every test passes"
            rows.append((name, verdict, detail))
            print(f"{name:36} {verdict:8} {detail} ({time.time() - t:.0f} s)", flush=True)
    print()
    print("| mutation | result | detail |")
    print("|---|---|---|")
    for r in rows:
        print(f"| `{r[0]}` | {r[1]} | {r[2]} |")
    survived = [r for r in rows if r[1] == "SURVIVED"]
    print(f"\n{len(rows)} mutations: {sum(r[1] == 'killed' for r in rows)} killed, {len(survived)} survived")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
