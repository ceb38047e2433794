#!/usr/bin/env python3
"""The module graph of each crate of the workspace, and its import loops.

Every `crate::…`, `super::…` and `self::…` path in a crate's sources (in `use` items and in
code) is an edge from the module the file defines to the module the path names. An edge is
counted between the two *siblings* under the modules' nearest common parent (so `launch::ovmf`
using `kvm::refusal` is the edge `launch → kvm` at the crate root, and `launch::ovmf` using
`launch::update` is `ovmf → update` inside `launch`). A module using its own parent's items, or
a parent using its children, is not an edge between siblings (STYLE.md: "a child module may use
its parent's items; two siblings never use each other").

Prints every crate's sibling edges (with `--edges`) and every loop among siblings; exits 1 if a
loop exists. `scripts/test.sh` runs it; ARCHITECTURE.md states the layering it checks.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = {
    "vmsa-core": "core/src",
    "vmsa-kvm": "host-kvm/src",
    "vmsa-pagehash": "pagehash/src",
    "vmsa-attest": "attest/src",
    "vmsa-wasm": "wasm/src",
    "vmsa": "src",
}
ROOT_FILES = ("lib.rs", "main.rs")


def modules(src):
    """Maps each module path (tuple) to its file, for every .rs file under `src`."""
    out = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod",) or (len(parts) == 1 and f in ROOT_FILES):
                parts = parts[:-1]
            out[tuple(parts)] = os.path.join(dirpath, f)
    return out


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def strip_tests(text):
    """Drops `#[cfg(test)] mod … { … }` blocks: tests may use what they test."""
    out, i = "", 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out += text[i : m.start()]
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    return out + text[i:]


def expand_use(tree):
    """`a::{b, c::{d, e}}` → ["a::b", "a::c::d", "a::c::e"]."""
    tree = tree.strip()
    m = re.match(r"^(.*?)\{(.*)\}$", tree, re.S)
    if not m:
        return [tree]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        p = p.strip()
        if p:
            out.extend(prefix + e for e in expand_use(p))
    return out


def paths(text):
    """Every crate/super/self path the file names."""
    text = strip_tests(strip_comments(text))
    found = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        for p in expand_use(m.group(1)):
            p = re.sub(r"\s+as\s+\w+$", "", p.strip())
            found.append(p)
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
        found.append(m.group(1))
    return found


def resolve(path, here, mods):
    """The module a path names, from module `here` (the longest module prefix)."""
    segs = [s for s in path.replace(" ", "").split("::") if s]
    if not segs:
        return None
    if segs[0] == "crate":
        base, segs = (), segs[1:]
    elif segs[0] in ("super", "self"):
        base = here
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
    else:
        return None
    target = base
    for s in segs:
        if base + (s,) in mods or (target + (s,)) in mods:
            target = target + (s,)
        else:
            break
    return target


def sibling_edge(a, b):
    """The edge between the siblings under the nearest common parent of `a` and `b`, or None
    when one is an ancestor of the other."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    if n == len(a) or n == len(b):
        return None
    return a[:n], a[n], b[n]


def cycles(edges):
    """Strongly connected components with more than one node (Tarjan)."""
    graph = {}
    for x, y in edges:
        graph.setdefault(x, set()).add(y)
        graph.setdefault(y, set())
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    show = "--edges" in sys.argv
    loops = 0
    for crate, src in CRATES.items():
        mods = modules(os.path.join(ROOT, src))
        by_parent = {}
        for here, path in mods.items():
            text = open(path, encoding="utf-8").read()
            for p in paths(text):
                target = resolve(p, here, mods)
                if target is None:
                    continue
                e = sibling_edge(here, target)
                if e:
                    parent, x, y = e
                    by_parent.setdefault(parent, set()).add((x, y))
        for parent in sorted(by_parent):
            name = "::".join((crate,) + parent)
            if show:
                for x, y in sorted(by_parent[parent]):
                    print(f"{name}: {x} -> {y}")
            for c in cycles(by_parent[parent]):
                loops += 1
                print(f"LOOP in {name}: {' <-> '.join(c)}")
    if loops:
        print(f"{loops} import loop(s)")
        return 1
    print("no import loops between sibling modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
