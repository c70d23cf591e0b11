"""Information system: the GLUE2 LDIF the cloudinfo daemon renders for the BDII, and optionally the BDII.

* ``cloudinfo.ldif`` in ``cloudinfo.cache_dir``: its age (WARNING after 2 refresh intervals,
  CRITICAL once older than ``cloudinfo.max_cache_age``, when the BDII provider stops publishing
  it) and its validity (whole LDIF records below ``cloudinfo.ldif_base``, a computing service,
  an endpoint, shares);
* ``cloudinfo.status.json``: a failed last refresh is WARNING (the previous render is still
  served until it ages out);
* with ``--bdii ldap://host:2170``: the BDII must publish our computing service (ldap3 search).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, List

from ..cloudinfo.settings import Settings as CloudinfoSettings
from .cli import duration
from .ldif_check import check_ldif
from .report import Report

NAME = "infosys"
HELP = "GLUE2 LDIF for the BDII: fresh, valid, and (--bdii) published"

STATUS_NAME = "cloudinfo.status.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--warning", type=duration, help="LDIF age for WARNING (default: 2 x cloudinfo.interval)")
    parser.add_argument("--critical", type=duration,
                        help="LDIF age for CRITICAL (default: cloudinfo.max_cache_age, when the BDII stops "
                             "publishing it)")
    parser.add_argument("--bdii", metavar="LDAP_URL", help="also check that this BDII publishes our service, "
                        "e.g. ldap://site-bdii.example.org:2170")
    parser.add_argument("--bdii-base", help="search base in the BDII (default: cloudinfo.ldif_base)")


def run(args: argparse.Namespace, config: Any, report: Report) -> None:
    settings = config.section(CloudinfoSettings)
    path = Path(settings.ldif_path)
    warning = args.warning if args.warning is not None else 2 * float(settings.interval)
    critical = args.critical if args.critical is not None else float(settings.max_cache_age)
    _check_status(Path(settings.cache_dir), report)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        report.critical(f"{path} does not exist: the cloudinfo daemon has not rendered the site yet, "
                        f"the BDII publishes nothing")
        return
    age = max(0.0, time.time() - mtime)
    report.check_age("LDIF rendered", age, warning, critical)
    if age >= critical:
        report.critical(f"{path} is older than cloudinfo.max_cache_age: the BDII provider publishes nothing")
    report.perf("ldif_age", round(age), "s", warning, critical, 0)

    summary = check_ldif(path, settings.ldif_base)
    report.perf("ldif_entries", summary.entries, minimum=0)
    for problem in summary.problems:
        report.critical(f"{path}: {problem}")
    missing: List[str] = [name for name in ("GLUE2ComputingService", "GLUE2ComputingEndpoint")
                          if not summary.object_classes.get(name)]
    if missing:
        report.critical(f"{path}: no {' and no '.join(missing)} entry")
    shares = summary.object_classes.get("GLUE2ComputingShare", 0)
    report.perf("shares", shares, minimum=0)
    if not missing and not summary.problems:
        if shares:
            report.ok(f"{summary.entries} valid entries, {shares} VO share(s)")
        else:
            report.warning(f"{summary.entries} valid entries but no VO share (are the vos mapped to projects?)")
    if args.bdii:
        _check_bdii(args.bdii, args.bdii_base or settings.ldif_base, summary.service_ids,
                    float(args.timeout or 30), report)


def _check_status(cache_dir: Path, report: Report) -> None:
    try:
        status = json.loads((cache_dir / STATUS_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        report.warning(f"{cache_dir / STATUS_NAME}: unreadable ({exc})")
        return
    if isinstance(status, dict) and status.get("last_error"):
        report.warning(f"last refresh at {status.get('last_attempt')} failed: {status['last_error']} "
                       f"(serving the render of {status.get('last_success')})")
    problems = status.get("problems") if isinstance(status, dict) else None
    if isinstance(problems, list):
        report.perf("problems", len(problems), minimum=0)


def _check_bdii(url: str, base: str, service_ids: List[str], timeout: float, report: Report) -> None:
    import ldap3
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.conv import escape_filter_chars

    if not service_ids:
        report.unknown("no computing service in our LDIF to look for in the BDII")
        return
    wanted = service_ids[0]
    try:
        server = ldap3.Server(url, connect_timeout=int(min(timeout, 10)), get_info=ldap3.NONE)
        with ldap3.Connection(server, auto_bind=True, receive_timeout=int(timeout), read_only=True) as conn:
            conn.search(base, f"(&(objectClass=GLUE2ComputingService)(GLUE2ServiceID={escape_filter_chars(wanted)}))",
                        search_scope=ldap3.SUBTREE, attributes=["GLUE2EntityCreationTime"], size_limit=5)
            found = list(conn.entries)
    except LDAPException as exc:
        report.critical(f"BDII {url}: {type(exc).__name__}: {exc}")
        return
    if not found:
        report.critical(f"BDII {url} does not publish service {wanted} below {base}")
        return
    created = found[0].entry_attributes_as_dict.get("GLUE2EntityCreationTime") or ["?"]
    report.ok(f"BDII {url} publishes {wanted} (created {created[0]})")
