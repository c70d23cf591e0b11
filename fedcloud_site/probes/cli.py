"""``fedcloud-site check <probe>``: site self-checks with monitoring-plugin output.

Every probe prints one line ``OK|WARNING|CRITICAL|UNKNOWN - <probe>: text | perfdata`` and exits
0/1/2/3, so it can be run by hand or by Nagios/Icinga/ARGO (NRPE, ``check_by_ssh``) as is.
An unreadable or invalid configuration is UNKNOWN (exit 3), not a CLI usage error.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import traceback
from types import FrameType, ModuleType
from typing import Any, Callable, List, Optional

from ..config import Config, load_config
from ..errors import ConfigError
from ..registry import probe_modules as daemon_probes
from ..schema import parse_duration
from .report import Report, Status

#: probes of no single daemon, listed after the daemons' own (each daemon's spec names its probe)
SITE_PROBES = ("fedcloud_site.probes.certs",)

EPILOG = ("Output: one line 'STATUS - probe: text | perfdata'. Exit status: 0 OK, 1 WARNING, "
          "2 CRITICAL, 3 UNKNOWN. Durations: seconds or 30s, 15m, 6h, 2d.")


def duration(text: str) -> float:
    """argparse type: a duration such as ``90``, ``15m``, ``6h``, ``2d``."""
    try:
        return float(parse_duration(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


class ProbeTimeout(Exception):
    pass


def _on_alarm(signum: int, frame: Optional[FrameType]) -> None:
    raise ProbeTimeout()


def probe_modules() -> List[ModuleType]:
    """Every probe, in the order ``check --help`` lists them: the daemons' (in run order), then the site's."""
    return [importlib.import_module(name) for name in [*daemon_probes(), *SITE_PROBES]]


def run_probe(module: ModuleType, args: argparse.Namespace, config: Optional[Config] = None) -> Report:
    """Run one probe; every failure becomes a finding, nothing raises."""
    report = Report(module.NAME)
    if config is None:
        try:
            config = load_config(getattr(args, "config", None))
        except ConfigError as exc:
            report.unknown(f"invalid configuration: {exc}")
            return report
    timeout = float(getattr(args, "timeout", 0) or 0)
    previous = None
    if timeout > 0:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        module.run(args, config, report)
    except ProbeTimeout:
        report.unknown(f"probe timed out after {timeout:g}s")
    except Exception as exc:  # noqa: BLE001 - a probe must always answer with a status line
        report.unknown(f"probe failed: {type(exc).__name__}: {exc}")
        if getattr(args, "verbose", False):
            traceback.print_exc(file=sys.stderr)
    finally:
        if timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
    return report


def _handler(args: argparse.Namespace, config: Optional[Config]) -> int:
    report = run_probe(args.probe_module, args, config)
    print(report.line())
    sys.stdout.flush()
    return int(report.status)


def add_commands(commands: Any, add_common: Callable[..., None]) -> None:
    """Add ``check <probe>`` to the top-level ``fedcloud-site`` command."""
    check = commands.add_parser(
        "check", help="site self-check probes (monitoring plugin output, exit 0-3)",
        description="Check this site's fedcloud-site services from the state the daemons write, "
                    "like a monitoring plugin.", epilog=EPILOG)
    add_common(check, False)
    probes = check.add_subparsers(dest="probe", metavar="PROBE")
    probes.required = True
    for module in probe_modules():
        doc = (module.__doc__ or "").strip()
        parser = probes.add_parser(module.NAME, help=module.HELP, description=doc.split("\n\n")[0], epilog=EPILOG,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_common(parser, False)
        parser.add_argument("--timeout", type=duration, default=60.0,
                            help="give up (UNKNOWN) after this long")
        module.add_arguments(parser)
        parser.set_defaults(handler=_handler, probe_module=module, needs_config=False)


__all__ = ["SITE_PROBES", "probe_modules", "Report", "Status", "add_commands", "run_probe", "duration"]
