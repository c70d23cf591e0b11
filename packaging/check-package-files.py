#!/usr/bin/env python3
"""Compare a package's file list (or dependency list) with the expected one; exit 1 on any difference.

Usage::

    rpm -qlp X.rpm | check-package-files.py packaging/rpm/expected-files.txt --source . --var sitelib=/usr/...
    dpkg-deb -c X.deb | check-package-files.py packaging/deb/expected-files.txt --dpkg --source . ...
    rpm -qp --requires X.rpm | check-package-files.py packaging/rpm/expected-requires.txt --var pyver=3.11

Expected-list syntax: one entry per line, ``#`` comments, ``{name}`` placeholders filled from ``--var``.
An entry with ``*`` is a pattern (``fnmatch``) that must match at least one listed entry (e.g. man
pages that one distribution compresses and another does not).  ``@package DIR`` stands for the
``fedcloud_site`` package as found in the source tree (``--source``): every directory, module and
package-data file below ``DIR/fedcloud_site``.  Byte-code (``__pycache__``, ``*.pyc``) in the listing
is ignored.  Stdlib only: runs on a bare Debian/RHEL host.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Set

PACKAGE = "fedcloud_site"
PACKAGE_DATA = (".py", ".typed", ".yaml", ".json", ".xml", ".ldif")


def package_entries(source: Path, target: str) -> Set[str]:
    """Directories and files the installed ``fedcloud_site`` package must contain."""
    root = source / PACKAGE
    entries = {f"{target}/{PACKAGE}"}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(source).as_posix()
        if "__pycache__" in path.parts or ".egg-info" in rel:
            continue
        if path.is_dir():
            if any(p.is_file() and p.name.endswith(PACKAGE_DATA) for p in path.rglob("*")):
                entries.add(f"{target}/{rel}")
        elif path.name.endswith(PACKAGE_DATA):
            entries.add(f"{target}/{rel}")
    return entries


def expected_entries(lines: Iterable[str], variables: Dict[str, str], source: Path) -> Set[str]:
    result: Set[str] = set()
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        line = line.format(**variables)
        if line.startswith("@package "):
            result |= package_entries(source, line.split(None, 1)[1].rstrip("/"))
        else:
            result.add(line.rstrip("/") if line != "/" else line)
    return result


def actual_entries(lines: Iterable[str], dpkg: bool) -> Set[str]:
    result: Set[str] = set()
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        if dpkg:  # dpkg-deb -c: "drwxr-xr-x root/root 0 2024-01-01 00:00 ./usr/bin/"
            name = re.split(r"\s+", line, maxsplit=5)[5]
            name = name.split(" -> ")[0]
            name = name[1:] if name.startswith("./") else name
            if name in ("/", ""):
                continue
            line = name
        line = line.strip()
        if "/__pycache__" in line or line.endswith((".pyc", ".pyo")):
            continue
        if line.startswith("rpmlib(") or line in ("/bin/sh",):
            continue
        result.add(line.rstrip("/") if line != "/" else line)
    return result


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("expected", type=Path)
    parser.add_argument("--source", type=Path, default=Path("."), help="source tree with fedcloud_site/")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--dpkg", action="store_true", help="input is `dpkg-deb -c` output")
    args = parser.parse_args(argv)
    variables = dict(v.split("=", 1) for v in args.var)
    expected = expected_entries(args.expected.read_text(encoding="utf-8").splitlines(), variables, args.source)
    actual = actual_entries(sys.stdin, args.dpkg)
    patterns = {e for e in expected if "*" in e}
    exact = expected - patterns
    missing = sorted(exact - actual) + sorted(p for p in patterns if not fnmatch.filter(actual, p))
    unexpected = sorted(a for a in actual - exact if not any(fnmatch.fnmatchcase(a, p) for p in patterns))
    for entry in missing:
        print(f"MISSING    {entry}")
    for entry in unexpected:
        print(f"UNEXPECTED {entry}")
    status = "differs from" if missing or unexpected else "matches"
    print(f"{args.expected}: package {status} the expected list "
          f"({len(actual)} entries, {len(missing)} missing, {len(unexpected)} unexpected)")
    return 1 if missing or unexpected else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
