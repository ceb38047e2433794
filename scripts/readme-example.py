#!/usr/bin/env python3
"""Prints the first fenced block of LANGUAGE under the README heading HEADING, so that the
README's examples are the ones the tests run (scripts/python-compat.sh, scripts/capi-test.sh).

    python3 scripts/readme-example.py "## Use from C" c > example.c
"""
import pathlib
import sys

heading, language = sys.argv[1], sys.argv[2]
text = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
try:
    section = text.split("\n" + heading + "\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```" + language + "\n", 1)[1].split("\n```", 1)[0]
except IndexError:
    sys.exit(f"readme-example.py: no ```{language} block under {heading!r} in README.md")
print(block)
