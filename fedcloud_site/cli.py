"""``fedcloud-site``: one command line for every daemon.

A handler returns 0 on success or raises a :class:`~fedcloud_site.errors.FedcloudSiteError`, whose
``exit_status`` the command ends with (the table is in :mod:`fedcloud_site.errors` and README.rst);
``--verbose`` adds the chain of causes behind the error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import yaml

from . import __version__
from .config import DEFAULT_CONFIG, Config, check_capabilities, load_config
from .errors import ConfigError, FedcloudSiteError, describe
from .log import configure_logging
from .probes import cli as probes
from .registry import daemon_names, daemon_specs
from .runner import run_daemon

Handler = Callable[[argparse.Namespace, Config], int]


def _add_common(parser: argparse.ArgumentParser, top: bool) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument("-c", "--config", type=Path, default=default if not top else None,
                        help=f"configuration file (default {DEFAULT_CONFIG}; conf.d/*.yaml beside it is merged)")
    parser.add_argument("-v", "--verbose", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="debug logging; errors show their chain of causes and tracebacks")
    parser.add_argument("-n", "--dry-run", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="show what would be done, change nothing")


def _run_daemon(args: argparse.Namespace, config: Config) -> int:
    check_capabilities(config, args.daemon)  # also when the daemon runs on defaults, without a section
    return run_daemon(args.daemon, args, config, once=args.action == "once")


def _check_config(args: argparse.Namespace, config: Config) -> int:
    print(f"# configuration OK: {', '.join(str(f) for f in config.files)}")
    print(yaml.safe_dump(config.as_plain(), sort_keys=False, default_flow_style=False), end="")
    return 0


def _list_daemons(args: argparse.Namespace, config: Optional[Config]) -> int:
    for name in daemon_names():
        print(name)
    return 0


def _version(args: argparse.Namespace, config: Optional[Config]) -> int:
    print(f"fedcloud-site {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (daemon packages add their own subcommands)."""
    parser = argparse.ArgumentParser(
        prog="fedcloud-site",
        description="EGI Federated Cloud site daemons: accounting, SSM sender, cloud information, "
                    "image lists, Perun user sync.",
        epilog="Exit status: 0 ok, 1 job failed or work left, 2 bad configuration or usage, "
               "3 daemon already running, 4 refused by a safety check.")
    _add_common(parser, top=True)
    parser.add_argument("--version", action="version", version=f"fedcloud-site {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(handler=_version, needs_config=False)
    check = commands.add_parser("check-config", help="validate the configuration and print it (secrets masked)")
    _add_common(check, top=False)
    check.set_defaults(handler=_check_config, needs_config=True)

    daemons = commands.add_parser("daemons", help="list the installed daemons, in the order they run")
    daemons.set_defaults(handler=_list_daemons, needs_config=False)
    probes.add_commands(commands, _add_common)
    for module in ("fedcloud_site.migrate.command",):  # commands beside the daemons
        try:
            importlib.import_module(module).add_commands(commands, _add_common)
        except ModuleNotFoundError:
            pass

    for spec in daemon_specs():
        sub = commands.add_parser(spec.name, help=spec.summary)
        _add_common(sub, top=False)
        actions = sub.add_subparsers(dest="action", metavar="ACTION")
        actions.required = True
        run = actions.add_parser("run", help="run as a daemon (scheduled jobs until SIGTERM)")
        once = actions.add_parser("once", help="run every job once and exit (cron, tests)")
        for p in (run, once):
            _add_common(p, top=False)
            p.set_defaults(handler=_run_daemon, needs_config=True)
        spec.add_cli(actions, lambda p: _add_common(p, top=False), (run, once))
        for action_parser in actions.choices.values():
            action_parser.set_defaults(daemon=spec.name)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``fedcloud-site``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose)
    config: Optional[Config] = None
    if getattr(args, "needs_config", True):
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            print(f"fedcloud-site: invalid configuration: {describe(exc, args.verbose)}", file=sys.stderr)
            return exc.exit_status
        configure_logging(config.logging, args.verbose)
    handler: Any = args.handler
    try:
        return int(handler(args, config))
    except FedcloudSiteError as exc:
        print(f"{_command_name(args)}: {describe(exc, args.verbose)}", file=sys.stderr)
        return exc.exit_status
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _command_name(args: argparse.Namespace) -> str:
    """``fedcloud-site <command> [<action>]``, to start an error message with."""
    words = ["fedcloud-site", getattr(args, "command", None), getattr(args, "action", None)]
    return " ".join(word for word in words if word)


#: console scripts ``fedcloud-site-<daemon>`` (setup.cfg) run :func:`daemon_entry`
DAEMON_SCRIPT_PREFIX = "fedcloud-site-"


def daemon_main(daemon: str) -> Callable[[], int]:
    """``fedcloud-site-<daemon> [options] [run|once|...]`` = ``fedcloud-site <daemon> ...``."""

    def entry() -> int:
        argv: List[str] = sys.argv[1:]
        if argv and not argv[0].startswith("-"):
            return main([daemon, *argv])
        return main([daemon, "run", *argv])

    return entry


def daemon_entry() -> int:
    """Console script ``fedcloud-site-<daemon>``: the daemon is read from the script's name."""
    script = os.path.basename(sys.argv[0])
    daemon = script[len(DAEMON_SCRIPT_PREFIX):] if script.startswith(DAEMON_SCRIPT_PREFIX) else ""
    if daemon not in daemon_names():
        print(f"{script}: not a daemon's command (expected {DAEMON_SCRIPT_PREFIX}<daemon>, daemons: "
              f"{', '.join(daemon_names())})", file=sys.stderr)
        return 2
    return daemon_main(daemon)()


__all__ = ["main", "build_parser", "daemon_entry", "daemon_main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
