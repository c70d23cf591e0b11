"""Sender connectivity: credentials, broker (or AMS) reachable over TLS, certificate lifetimes, last run.

* the signing credentials as the ``ssm`` daemon loads them (key pair, lifetime, chain);
* every broker (``ssm.brokers``, else the list the daemon last discovered, else ``--discover``
  from the BDII) or the AMS host: TCP connect and TLS handshake with the host certificate,
  the peer verified against ``ssm.capath`` (AMS: also the system CAs), and the peer
  certificate's lifetime; ``--stomp`` also logs in with STOMP as the sender does;
* the daemon's last run (``<state_dir>/last-run.json``): its age and error.

No broker reachable is CRITICAL; some (not all) unreachable is WARNING (failover still works).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any, List, Optional, Tuple

from cryptography import x509 as cx509

from ..ssm.settings import Settings as SSMSettings
from ..timeutil import parse_time, utcnow
from ..x509 import not_after, subject_dn
from .cli import duration
from .report import Report

NAME = "sender"
HELP = "SSM sender: brokers reachable, TLS handshake, certificate expiry, last run"

Endpoint = Tuple[str, int]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", action="append", default=[], metavar="HOST:PORT",
                        help="check this broker instead of the configured/discovered ones (repeatable)")
    parser.add_argument("--discover", action="store_true",
                        help="ask the BDII (ssm.bdii) for brokers when none are configured or cached")
    parser.add_argument("--stomp", action="store_true", help="also log in with STOMP (CONNECT/CONNECTED)")
    parser.add_argument("--connect-timeout", type=duration, default=10.0, help="per connection")
    parser.add_argument("--warning", type=duration, default=duration("14d"),
                        help="WARNING when a certificate (ours or the broker's) expires within this")
    parser.add_argument("--critical", type=duration, default=duration("3d"),
                        help="CRITICAL when a certificate expires within this")
    parser.add_argument("--last-run-warning", type=duration,
                        help="age of the last sender run for WARNING (default: 4 x interval, at least 30m)")
    parser.add_argument("--last-run-critical", type=duration,
                        help="age of the last sender run for CRITICAL (default: 12 x interval, at least 2h)")


def run(args: argparse.Namespace, config: Any, report: Report) -> None:
    settings = config.section(SSMSettings)
    _check_credentials(settings, args, report)
    endpoints, source = _endpoints(settings, args, report)
    if endpoints:
        reachable = _check_endpoints(settings, endpoints, source, args, report)
        if args.stomp and settings.transport == "stomp" and reachable:
            _check_stomp(settings, reachable, args, report)
    _check_last_run(settings, args, report)


# -- credentials ------------------------------------------------------------------------------------
def _check_credentials(settings: Any, args: argparse.Namespace, report: Report) -> None:
    from ..ssm.signing import CredentialError, load_signer

    if settings.key.exists() and not os.access(settings.key, os.R_OK):
        report.unknown(f"{settings.key}: not readable by this user (run the probe as root or fedcloud)")
        return
    try:
        signer = load_signer(settings.certificate, settings.key, settings.capath, settings.server_cert,
                             min_lifetime=float(settings.min_cert_lifetime))
    except CredentialError as exc:
        report.critical(f"sender credentials: {exc}")
        return
    remaining = (not_after(signer.cert) - utcnow()).total_seconds()
    report.check_remaining(f"sender certificate {signer.dn}", remaining, args.warning, args.critical)
    report.perf("sender_cert_days_left", round(remaining / 86400, 1), "", round(args.warning / 86400, 1),
                round(args.critical / 86400, 1))
    for warning in signer.warnings or []:
        report.warning(warning)


# -- endpoints --------------------------------------------------------------------------------------
def _endpoints(settings: Any, args: argparse.Namespace, report: Report) -> Tuple[List[Endpoint], str]:
    from ..ssm.settings import parse_broker

    if args.broker:
        try:
            return [parse_broker(b) for b in args.broker], "command line"
        except ValueError as exc:
            report.unknown(str(exc))
            return [], ""
    if settings.transport == "ams":
        return [(settings.ams.host, int(settings.ams.port))], "AMS"
    if settings.brokers:
        return list(settings.broker_addresses()), "configured"
    from ..ssm.brokers import BrokerCache, DiscoveryError, discover

    cached = BrokerCache(Path(settings.state_path("ssm")) / "brokers.json").load()
    if cached is not None and cached[0]:
        return list(cached[0]), "last discovered"
    if args.discover:
        try:
            found = discover(settings.bdii, settings.network, settings.use_ssl, float(args.connect_timeout))
        except DiscoveryError as exc:
            report.critical(f"broker discovery: {exc}")
            return [], ""
        if not found:
            report.critical(f"BDII {settings.bdii} lists no broker for network {settings.network}")
        return list(found), f"BDII {settings.bdii}"
    report.unknown("no brokers configured and none discovered by the sender yet (use --discover or --broker)")
    return [], ""


def _ca_data(settings: Any) -> str:
    from ..ssm.signing import ca_bundle

    return ca_bundle(settings.capath).decode("ascii")


def tls_handshake(host: str, port: int, timeout: float, context: ssl.SSLContext) -> cx509.Certificate:
    """Connect, complete the TLS handshake and return the peer's certificate.

    With TLS 1.3 the server checks our certificate after the handshake, so wait briefly for an
    alert (a STOMP broker otherwise says nothing until we send CONNECT).
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
            tls.settimeout(min(timeout, 1.0))
            try:
                tls.recv(1)
            except (socket.timeout, TimeoutError):
                pass
    if der is None:  # pragma: no cover - verified TLS always has a peer certificate
        raise ssl.SSLError("no peer certificate")
    return cx509.load_der_x509_certificate(der)


def _context(settings: Any) -> ssl.SSLContext:
    if settings.transport == "ams":
        context = ssl.create_default_context()
        if Path(settings.capath).is_dir():
            context.load_verify_locations(cadata=_ca_data(settings))
    else:
        context = ssl.create_default_context(cadata=_ca_data(settings))
        context.check_hostname = bool(getattr(settings, "check_hostname", True))
        context.load_cert_chain(str(settings.certificate), str(settings.key))
    return context


def _problem(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate rejected: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc} (our certificate may have been refused)"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def _check_endpoints(settings: Any, endpoints: List[Endpoint], source: str, args: argparse.Namespace,
                     report: Report) -> List[Endpoint]:
    tls = settings.transport == "ams" or settings.use_ssl
    context: Optional[ssl.SSLContext] = None
    if tls:
        try:
            context = _context(settings)
        except Exception as exc:  # noqa: BLE001 - bad CA directory or credentials: nothing to connect with
            report.critical(f"cannot set up TLS: {exc}")
            return []
    reachable: List[Endpoint] = []
    failures: List[str] = []
    for host, port in endpoints:
        name = f"{host}:{port}"
        try:
            if context is None:
                socket.create_connection((host, port), timeout=args.connect_timeout).close()
                reachable.append((host, port))
                continue
            peer = tls_handshake(host, port, float(args.connect_timeout), context)
        except Exception as exc:  # noqa: BLE001 - every failure is a finding
            failures.append(f"{name} {_problem(exc)}")
            continue
        reachable.append((host, port))
        remaining = (not_after(peer) - utcnow()).total_seconds()
        report.check_remaining(f"{name} ({subject_dn(peer)}) certificate", remaining, args.warning, args.critical)
    kind = "AMS" if settings.transport == "ams" else "broker"
    report.perf("endpoints", len(endpoints), minimum=0)
    report.perf("endpoints_reachable", len(reachable), minimum=0, maximum=len(endpoints))
    if not reachable:
        report.critical(f"no {kind} reachable ({source}): {'; '.join(failures)}")
    elif failures:
        report.warning(f"{len(failures)} of {len(endpoints)} {kind}s unreachable ({source}): {'; '.join(failures)}")
    else:
        how = "TLS handshake" if tls else "TCP connect"
        report.ok(f"{len(reachable)} {kind}(s) reachable ({source}, {how})")
    return reachable


def _check_stomp(settings: Any, reachable: List[Endpoint], args: argparse.Namespace, report: Report) -> None:
    from ..ssm.stomp_transport import StompTransport, TlsFiles
    from ..ssm.transport import TransportError

    with tempfile.TemporaryDirectory(prefix="fedcloud-site-probe-") as scratch:
        tls = None
        if settings.use_ssl:
            bundle = Path(scratch) / "ca.pem"
            bundle.write_text(_ca_data(settings), encoding="ascii")
            tls = TlsFiles(cert_file=settings.certificate, key_file=settings.key, ca_file=bundle,
                           capath=settings.capath)  # broker certificate also checked against the CRLs
        for broker in reachable:
            transport = StompTransport([broker], settings.destination, tls=tls,
                                       connect_timeout=float(args.connect_timeout), heartbeat=0, reconnects=0,
                                       version=getattr(settings, "stomp_version", "1.2"))
            try:
                transport.open()
            except TransportError as exc:
                report.critical(f"STOMP login to {broker[0]}:{broker[1]} failed: {exc}")
                continue
            finally:
                transport.close()
            report.ok(f"STOMP login to {broker[0]}:{broker[1]} accepted")


# -- last run ---------------------------------------------------------------------------------------
def _check_last_run(settings: Any, args: argparse.Namespace, report: Report) -> None:
    path = Path(settings.state_path("ssm")) / "last-run.json"
    interval = float(settings.interval)
    warning = args.last_run_warning or max(4 * interval, 1800.0)
    critical = args.last_run_critical or max(12 * interval, 7200.0)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        finished = parse_time(data["finished"])
    except FileNotFoundError:
        report.warning(f"no sender run recorded yet ({path})")
        return
    except (OSError, ValueError, KeyError, TypeError) as exc:
        report.critical(f"{path}: unreadable ({exc})")
        return
    age = (utcnow() - finished).total_seconds()
    report.check_age("last sender run", age, warning, critical)
    report.perf("last_run_age", round(age), "s", warning, critical, 0)
    for key in ("sent", "failed", "rejected", "remaining"):
        if isinstance(data.get(key), int):
            report.perf(f"last_run_{key}", data[key], minimum=0)
    if data.get("error"):
        report.critical(f"last sender run failed: {data['error']}")
