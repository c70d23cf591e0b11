"""Structured logging with structlog: key=value or JSON lines, to stderr or a log file.

A log file is reopened when logrotate moves it away (``WatchedFileHandler``),
so no ``copytruncate`` or signal is needed.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from typing import Any, Optional

import structlog

from .config import LoggingSettings

_HANDLER_NAME = "fedcloud-site"


def configure_logging(settings: Optional[LoggingSettings] = None, verbose: bool = False) -> None:
    """(Re)configure logging from the ``logging`` section; safe to call again on SIGHUP."""
    settings = settings or LoggingSettings()
    level = logging.DEBUG if verbose else getattr(logging, settings.level.upper())
    handler: logging.Handler
    if settings.file is not None:
        settings.file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.WatchedFileHandler(str(settings.file), encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("apscheduler", "urllib3", "stomp.py", "keystoneauth", "openstack"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))

    renderer: Any
    if settings.format == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "logger", "event"],
                                                         drop_missing=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "fedcloud-site", **context: Any) -> Any:
    """A bound structlog logger."""
    return structlog.get_logger(name).bind(**context)
