"""``fedcloud-site cloudinfo render|provider|status``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable

from ..cloud import open_backend
from ..cloud.base import CloudAuthError, CloudUnavailable
from ..config import Config
from ..errors import ConfigError, FedcloudSiteError
from ..timeutil import utcnow
from .cache import cache_age, read_status
from .glue21json import write_json
from .ldif import write_ldif
from .model import ModelError, build_model
from .provider import print_cached_ldif
from .settings import Settings


def _render(args: argparse.Namespace, config: Config) -> int:
    """Read the cloud now and print the LDIF or JSON (the cache is not touched)."""
    try:
        backend = open_backend(config)
        try:
            model = build_model(config, backend, utcnow())
        finally:
            backend.close()
    except ModelError as exc:
        raise ConfigError(None, "", f"incomplete configuration: {exc}") from exc
    except (CloudUnavailable, CloudAuthError) as exc:
        raise FedcloudSiteError(f"cloud not readable: {exc}") from exc
    out = sys.stdout.buffer
    try:
        if args.format == "ldif":
            write_ldif(model, out)
        else:
            write_json(model, out)
        out.flush()
    except BrokenPipeError:  # e.g. piped into head: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _provider(args: argparse.Namespace, config: Config) -> int:
    """Print the cached LDIF if fresh (what the BDII provider hook prints)."""
    settings: Settings = config.section(Settings)
    printed = print_cached_ldif(settings.cache_dir, sys.stdout.buffer, float(settings.max_cache_age))
    return 0 if printed else FedcloudSiteError.exit_status  # the reason is on stderr


def _status(args: argparse.Namespace, config: Config) -> int:
    """Show the cache: age, last success, last error, counts."""
    settings: Settings = config.section(Settings)
    status = read_status(settings.cache_dir)
    age = cache_age(settings.ldif_path, time.time())
    status["ldif"] = str(settings.ldif_path.resolve())
    status["ldif_age_seconds"] = None if age is None else round(age)
    status["published_by_provider"] = age is not None and age <= float(settings.max_cache_age)
    print(json.dumps(status, indent=1, sort_keys=True))
    healthy = status["published_by_provider"] and not status.get("last_error")
    return 0 if healthy else FedcloudSiteError.exit_status


def add_commands(actions: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``render``, ``provider`` and ``status`` to ``fedcloud-site cloudinfo``."""
    render = actions.add_parser("render", help="read the cloud now and print the GLUE LDIF or JSON to stdout")
    add_common(render)
    render.add_argument("--format", choices=("ldif", "json"), default="ldif",
                        help="ldif: GLUE 2.0 for the BDII (default); json: GLUE 2.1 (cloud-info-provider 1.x shape)")
    render.set_defaults(handler=_render, needs_config=True)

    provider = actions.add_parser("provider", help="print the cached LDIF if it is fresh (what the BDII runs)")
    add_common(provider)
    provider.set_defaults(handler=_provider, needs_config=True)

    status = actions.add_parser("status", help="show the cache's age, last refresh and last error")
    add_common(status)
    status.set_defaults(handler=_status, needs_config=True)
