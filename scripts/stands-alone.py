#!/usr/bin/env python3
"""The repository stands alone: no tracked file refers to a path outside it.

Every relative path that climbs (`../…`) in a tracked text file is resolved as its language
resolves it (from the file for `#[path]`, Markdown and JavaScript; from the crate root, the
nearest Cargo.toml, or the repository root for code and scripts) and must land inside the
repository. Absolute paths into
the development machines (`/work/`, `/root/`, `/home/`, `/tmp/research`) are refused outright.
System paths the tests use on purpose (`/usr/share/OVMF`, `/dev/kvm`, …) are not this script's
business: `VMSA_REQUIRE` makes their absence a failure. Exit 1 with each offending line.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
CLIMB = re.compile(r"(?:\.\./)+[\w.-][\w./-]*")
ABSOLUTE = re.compile(r"(?<![\w.])(/work/|/root/|/home/\w|/tmp/research)")
SELF = "scripts/stands-alone.py"


def crate_root(path):
    d = os.path.dirname(path)
    while d.startswith(ROOT):
        if os.path.exists(os.path.join(d, "Cargo.toml")):
            return d
        d = os.path.dirname(d)
    return ROOT


def inside(p):
    p = os.path.realpath(p)
    return p == ROOT or p.startswith(ROOT + os.sep)


def main():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    bad = []
    for rel in files.stdout.decode().split("\0"):
        if not rel or rel == SELF:
            continue
        path = os.path.join(ROOT, rel)
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue
        for n, line in enumerate(lines, 1):
            # `#[path]`, Markdown links and JavaScript imports are relative to the file; code
            # otherwise to the crate (CARGO_MANIFEST_DIR, a test's working directory) or to
            # the repository root (the scripts `cd` there).
            if any(k in line for k in ("#[path", "include_str!", "include_bytes!")) or rel.endswith(
                (".md", ".js", ".html", ".mjs")
            ):
                bases = {os.path.dirname(path)}
            elif rel.endswith(".sh"):
                # From the repository root and from each directory the script `cd`s into.
                text = "".join(lines)
                here = os.path.dirname(path)
                bases = (
                    {ROOT, here}
                    | {os.path.join(ROOT, d) for d in re.findall(r"\bcd ([\w./-]+)", text)}
                    | {
                        os.path.normpath(os.path.join(here, d))
                        for d in re.findall(r'\bcd "\$\(dirname "\$0"\)/([\w./-]+)"', text)
                    }
                )
            else:
                bases = {crate_root(path), ROOT}
            for m in CLIMB.finditer(line):
                target = m.group(0)
                if not any(inside(os.path.join(b, target)) for b in bases):
                    bad.append(f"{rel}:{n}: {target} leaves the repository")
            m = ABSOLUTE.search(line)
            if m:
                bad.append(f"{rel}:{n}: {m.group(1)}… is a path on a development machine")
    for b in bad:
        print(b, file=sys.stderr)
    if bad:
        print(f"{len(bad)} references outside the repository", file=sys.stderr)
        return 1
    print("every path in the tracked files stays inside the repository")
    return 0


if __name__ == "__main__":
    sys.exit(main())
