#!/usr/bin/env python3
"""Install a wheel into an RPM build root the way ``%pyproject_install`` does, for hosts without it.

Used by ``fedcloud-site.spec`` when pyproject-rpm-macros are not there (e.g. rpmbuild on Debian in
CI). Layout: the ``posix_prefix`` scheme under ``/usr`` (``/usr/lib/python3.X/site-packages``, as on
RHEL/Fedora), scripts in ``/usr/bin`` with ``#!/usr/bin/python3``, ``INSTALLER`` = ``rpm`` and no
``RECORD`` (rpm owns the files), no byte-code (the distribution's brp scripts compile it).
Uses the ``installer`` library (Debian: python3-installer).
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
from pathlib import Path

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--destdir", required=True, type=Path, help="the RPM build root")
    parser.add_argument("--prefix", default="/usr")
    parser.add_argument("--interpreter", default="/usr/bin/python3")
    parser.add_argument("wheel", type=Path)
    args = parser.parse_args()
    paths = sysconfig.get_paths("posix_prefix", vars={"base": args.prefix, "platbase": args.prefix,
                                                      "installed_base": args.prefix,
                                                      "installed_platbase": args.prefix})
    scheme = {"purelib": paths["purelib"], "platlib": paths["platlib"], "scripts": paths["scripts"],
              "data": paths["data"], "headers": paths["include"]}
    destination = SchemeDictionaryDestination(scheme, interpreter=args.interpreter, script_kind="posix",
                                              destdir=str(args.destdir))
    with WheelFile.open(args.wheel) as source:
        install(source, destination, additional_metadata={"INSTALLER": b"rpm\n"})
    for record in (args.destdir / paths["purelib"].lstrip("/")).glob("*.dist-info/RECORD"):
        record.unlink()
    print(f"installed {args.wheel.name} into {args.destdir}{paths['purelib']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
