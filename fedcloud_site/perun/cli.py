"""``fedcloud-site perun sync`` and ``fedcloud-site perun status``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from ..config import Config
from ..runner import run_daemon
from .report import format_status
from .settings import Settings
from .state import Journal, SyncState
from .sync import DAEMON, iter_pending_inputs


def _sync(args: argparse.Namespace, config: Config) -> int:
    return run_daemon(DAEMON, args, config, once=True)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--force`` and ``--file`` for ``perun run|once|sync``."""
    parser.add_argument("--force", action="store_true", help="apply although a safety check refuses")
    parser.add_argument("--file", type=Path, default=None,
                        help="use this propagation file instead of the configured source")


def _status(args: argparse.Namespace, config: Config) -> int:
    settings: Settings = config.section(Settings)
    state_dir = settings.state_path(DAEMON)
    state = SyncState(state_dir)  # an unreadable state or journal: StateError, reported by the command line
    journal_info: Optional[dict] = None
    journal = Journal(state_dir)
    if journal.exists():
        _, actions, phases = journal.load()
        left = sum(1 for i in range(len(actions)) if phases.get(i) not in ("done", "skipped"))
        journal_info = {"left": left, "total": len(actions)}
    pending = [str(p) for p in iter_pending_inputs(settings)]
    sys.stdout.write(format_status(state.data, journal_info, pending))
    return 0


def add_commands(actions: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``sync`` and ``status`` to ``fedcloud-site perun``."""
    sync = actions.add_parser("sync", help="synchronise users once now (plan only with --dry-run)")
    add_common(sync)
    add_run_arguments(sync)
    sync.add_argument("--once", action="store_true", help="accepted for compatibility: sync always runs once")
    sync.set_defaults(handler=_sync, needs_config=True)
    status = actions.add_parser("status", help="last sync, managed users, pending deletions")
    add_common(status)
    status.set_defaults(handler=_status, needs_config=True)
