"""Host certificate, CA directory and CRL freshness.

The host certificate (default ``ssm.certificate``) must be valid for longer than the thresholds,
match its key (when the key is readable), and verify against the CA directory (default
``ssm.capath``) including revocation.  In the CA directory, expired CRLs are CRITICAL (fetch-crl
is not running: every verification against that CA fails) and CRLs expiring soon are WARNING;
expired CA certificates are reported as WARNING.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Optional

from .. import x509
from ..timeutil import utcnow
from .cli import duration
from .report import Report, format_duration

NAME = "certs"
HELP = "host certificate, CA directory and CRL freshness"

DEFAULT_CERTIFICATE = Path("/etc/grid-security/hostcert.pem")
DEFAULT_KEY = Path("/etc/grid-security/hostkey.pem")
DEFAULT_CAPATH = Path("/etc/grid-security/certificates")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--certificate", type=Path, help="host certificate (default: ssm.certificate)")
    parser.add_argument("--key", type=Path, help="its private key (default: ssm.key)")
    parser.add_argument("--capath", type=Path, help="CA directory (default: ssm.capath)")
    parser.add_argument("--warning", type=duration, default=duration("30d"),
                        help="WARNING when the host certificate expires within this")
    parser.add_argument("--critical", type=duration, default=duration("7d"),
                        help="CRITICAL when the host certificate expires within this")
    parser.add_argument("--crl-warning", type=duration, default=duration("12h"),
                        help="WARNING when a CRL's nextUpdate is within this (fetch-crl should have "
                             "refreshed it by then)")


def _default(config: Any, key: str, fallback: Path) -> Path:
    section = config.daemons.get("ssm")
    value = getattr(section, key, None) if section is not None else None
    return Path(value) if value is not None else fallback


def run(args: argparse.Namespace, config: Any, report: Report) -> None:
    cert_path = args.certificate or _default(config, "certificate", DEFAULT_CERTIFICATE)
    key_path = args.key or _default(config, "key", DEFAULT_KEY)
    capath = args.capath or _default(config, "capath", DEFAULT_CAPATH)
    now = utcnow()
    store = _check_ca_directory(capath, args, report, now)
    _check_host_certificate(cert_path, key_path, store, args, report, now)


def _check_ca_directory(capath: Path, args: argparse.Namespace, report: Report, now: Any) -> Optional[x509.TrustStore]:
    try:
        store = x509.TrustStore.from_directory(capath)
    except x509.X509Error as exc:
        report.critical(str(exc))
        return None
    expired_cas = [ca for ca in store.cas if x509.not_after(ca) < now]
    expired_crls = []
    expiring_crls = []
    for crl in store.crls:
        next_update = x509.utc_attribute(crl, "next_update")
        if next_update is None:
            continue
        left = (next_update - now).total_seconds()
        if left < 0:
            expired_crls.append((x509.dn_to_slash(crl.issuer), -left))
        elif left < args.crl_warning:
            expiring_crls.append((x509.dn_to_slash(crl.issuer), left))
    report.perf("cas", len(store.cas), minimum=0)
    report.perf("crls", len(store.crls), minimum=0)
    report.perf("crls_expired", len(expired_crls), critical=0, minimum=0)
    if expired_crls:
        name, ago = max(expired_crls, key=lambda item: item[1])
        report.critical(f"{len(expired_crls)} expired CRL(s) in {capath} (e.g. {name}, "
                        f"{format_duration(ago)} ago; is fetch-crl running?)")
    if expiring_crls:
        name, left = min(expiring_crls, key=lambda item: item[1])
        report.warning(f"{len(expiring_crls)} CRL(s) in {capath} expire within "
                       f"{format_duration(args.crl_warning)} (e.g. {name} in {format_duration(left)})")
    if expired_cas:
        report.warning(f"{len(expired_cas)} expired CA certificate(s) in {capath} "
                       f"(e.g. {x509.subject_dn(expired_cas[0])}; update the CA distribution)")
    if store.problems:
        report.warning(f"{len(store.problems)} unreadable file(s) in {capath}: {store.problems[0]}")
    if not (expired_crls or expiring_crls or expired_cas or store.problems):
        report.ok(f"{len(store.cas)} CAs and {len(store.crls)} CRLs in {capath} current")
    return store


def _check_host_certificate(cert_path: Path, key_path: Path, store: Optional[x509.TrustStore],
                            args: argparse.Namespace, report: Report, now: Any) -> None:
    try:
        certs = x509.load_certificates(cert_path)
    except x509.X509Error as exc:
        report.critical(str(exc))
        return
    cert = certs[0]
    remaining = (x509.not_after(cert) - now).total_seconds()
    report.perf("host_cert_days_left", round(remaining / 86400, 1), "", round(args.warning / 86400, 1),
                round(args.critical / 86400, 1))
    report.check_remaining(f"host certificate {x509.subject_dn(cert)}", remaining, args.warning, args.critical)
    if not key_path.exists():
        report.critical(f"{key_path}: host key missing")
    elif not os.access(key_path, os.R_OK):
        report.unknown(f"{key_path}: not readable by this user, key not checked")
    else:
        try:
            key = x509.load_private_key(key_path)
        except x509.X509Error as exc:
            report.critical(str(exc))
        else:
            if not x509.key_matches_certificate(key, cert):
                report.critical(f"{key_path} does not match the host certificate {cert_path}")
    if store is None:
        return
    try:
        store.verify(cert, certs[1:], now=now)
    except x509.VerificationError as exc:
        report.critical(f"host certificate does not verify: {exc}")
