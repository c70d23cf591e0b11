"""``fedcloud-site migrate --from TOOL=FILE ... [--output DIR] [--dry-run] [--force]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..config import DEFAULT_CONFIG
from . import atrope, caso, cloudinfo, ssm, vmcatcher
from .errors import MigrationError
from .fragments import build_fragments, validate, write
from .report import Report
from .result import ToolResult

#: --from names (and their aliases) -> reader
TOOLS: Dict[str, str] = {"caso": "caso", "ssm": "apel-ssm", "apel-ssm": "apel-ssm",
                         "cloud-info-provider": "cloud-info-provider", "cip": "cloud-info-provider",
                         "atrope": "atrope", "vmcatcher": "vmcatcher"}
#: the order tools are read in (the site fragment merges in this order)
ORDER = ("caso", "apel-ssm", "cloud-info-provider", "atrope", "vmcatcher")

EPILOG = """\
Tools: caso=/etc/caso/caso.conf (its mapping_file and spooldir lastrun files are read too),
ssm=/etc/apel/sender.cfg, cloud-info-provider=SITE.yaml (1.x site file, or its @argument file),
atrope=/etc/atrope/sources.yaml, vmcatcher=DATABASE (its SQLite file, VMCATCHER_RDBMS).
Fragments go to conf.d beside the configuration file (or --output): 50-migrated-site.yaml and
60-migrated-<tool>.yaml, validated with the rest of the configuration before they are written.
Exit status: 0 done, 2 an input or the resulting configuration is invalid (nothing written).
See docs/migration.rst for the switch-over sequence and how to roll back."""


def _from(text: str) -> tuple:
    tool, sep, path = text.partition("=")
    if not sep or not path:
        raise argparse.ArgumentTypeError(f"expected TOOL=FILE, got {text!r}")
    if tool not in TOOLS:
        raise argparse.ArgumentTypeError(f"unknown tool {tool!r} (known: {', '.join(sorted(TOOLS))})")
    return TOOLS[tool], Path(path)


def add_commands(commands: Any, add_common: Callable[..., None]) -> None:
    """Add ``migrate`` to the top-level ``fedcloud-site`` command."""
    parser = commands.add_parser(
        "migrate", help="configuration and state from cASO, apel-ssm, cloud-info-provider, atrope, vmcatcher",
        description="Write fedcloud-site configuration fragments from the configuration of the tools a site "
                    "runs today, carry their state over, and report every option mapped or not.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(parser, False)
    parser.add_argument("--from", dest="sources", action="append", type=_from, required=True,
                        metavar="TOOL=FILE", help="a tool's configuration file (repeat for each tool)")
    parser.add_argument("--output", type=Path, default=None,
                        help="directory of the fragments (default: conf.d beside the configuration file)")
    parser.add_argument("--force", action="store_true", help="replace fragments and state a previous run wrote")
    parser.add_argument("--gocdb-service-id", default=None,
                        help="GOCDB id of the cloud compute service (keeps cloud-info-provider's AMS topic)")
    parser.set_defaults(handler=run, needs_config=False)


def read_sources(sources: List[tuple], report: Report, gocdb_service_id: Optional[str] = None) -> List[ToolResult]:
    """Each ``(tool, path)`` read by its module, in :data:`ORDER`; a tool given twice is an error."""
    seen: Dict[str, Path] = {}
    for tool, path in sources:
        if tool in seen:
            raise MigrationError(path, f"--from {tool} given twice (also {seen[tool]})")
        seen[tool] = path
    results = []
    for tool in ORDER:
        if tool not in seen:
            continue
        path = seen[tool]
        if tool == "caso":
            results.append(caso.migrate(path, report))
        elif tool == "apel-ssm":
            results.append(ssm.migrate(path, report))
        elif tool == "cloud-info-provider":
            results.append(cloudinfo.migrate(path, report, gocdb_service_id))
        elif tool == "atrope":
            results.append(atrope.migrate(path, report))
        else:
            results.append(vmcatcher.migrate(path, report))
    return results


def migrate(sources: List[tuple], main_config: Path, output: Optional[Path], dry_run: bool, force: bool,
            gocdb_service_id: Optional[str] = None, out: Any = None) -> Report:
    """The whole migration; raises MigrationError (nothing written) on any invalid input or result."""
    stream = out or sys.stdout
    report = Report()
    results = read_sources(sources, report, gocdb_service_id)
    fragments = build_fragments(results, report)
    directory = output if output is not None else main_config.parent / "conf.d"
    config = validate(fragments, main_config, directory)
    if output is not None and output.resolve() != (main_config.parent / "conf.d").resolve():
        report.warn(f"{output} is not {main_config.parent / 'conf.d'}: the daemons read the fragments only once "
                    "they are moved there")
    if not main_config.exists():
        report.warn(f"{main_config} does not exist: the daemons read it first (the fragments are merged over it); "
                    "create it (it may be empty) or give -c")
    actions = [action for result in results for action in result.actions]
    planned = [line for action in actions for line in action(config, True, force)]  # checks every state file first
    if dry_run:
        for fragment in fragments:
            stream.write(f"# --- {directory / fragment.name} (dry run: not written)\n{fragment.text()}")
        report.state.extend(planned)
    else:
        for path, replaced in write(fragments, directory, force):
            report.written.append(f"{path}{' (replaced)' if replaced else ''}")
        for action in actions:
            report.state.extend(action(config, False, force))
    stream.write(report.render())
    return report


def run(args: argparse.Namespace, config: Any) -> int:
    """Handler of ``fedcloud-site migrate``."""
    main_config = Path(args.config) if args.config is not None else DEFAULT_CONFIG
    migrate(args.sources, main_config, args.output, args.dry_run, args.force, args.gocdb_service_id)
    return 0  # a failure raises MigrationError: the command line exits with its status
