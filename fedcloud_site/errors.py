"""The errors fedcloud-site raises on purpose, each carrying the exit status it ends a command with.

Every such error derives from :class:`FedcloudSiteError`.  The runner and the command line catch that
one base class and exit with the error's ``exit_status``; anything else that escapes is a bug and ends
the run with status 1.  The statuses (also in README.rst and ``fedcloud-site --help``):

* 0 - success
* 1 - a job failed or left work undone (:class:`FedcloudSiteError`, :class:`JobIncomplete`, :class:`LockUnavailable`)
* 2 - invalid configuration or command line (:class:`ConfigError`, :class:`UsageError`)
* 3 - another instance of the daemon holds its lock (:class:`AlreadyRunning`)
* 4 - a safety check refused to apply changes (:class:`JobRefused`)

An error translated from a lower-level one keeps it as its cause (``raise ... from exc``):
``--verbose`` shows the whole chain (:func:`cause_chain`).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, ClassVar, Dict, List, Mapping, Optional


class FedcloudSiteError(Exception):
    """Base of fedcloud-site's errors: a failed run (exit status 1) unless a subclass says otherwise."""

    #: the process exit status this error ends a command with
    exit_status: ClassVar[int] = 1
    #: the ``status`` word of the run summary the runner logs for it
    outcome: ClassVar[str] = "failed"
    #: counters of the work done before the error (logged with the run summary)
    summary: Mapping[str, Any] = MappingProxyType({})


class ConfigError(FedcloudSiteError):
    """An invalid configuration: ``file: key.path: problem``."""

    exit_status = 2

    def __init__(self, file: Optional[str], key: str, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        where = f"{file}: " if file else ""
        super().__init__(f"{where}{key}: {problem}" if key else f"{where}{problem}")


class UsageError(FedcloudSiteError):
    """A command line that cannot be acted on (e.g. a period that ends before it starts)."""

    exit_status = 2


class AlreadyRunning(FedcloudSiteError):
    """The daemon's lock is held by another process."""

    exit_status = 3


class LockUnavailable(FedcloudSiteError):
    """The daemon's lock file cannot be created (missing permissions, full disk...)."""


class JobIncomplete(FedcloudSiteError):
    """A job ran but could not finish everything (work is left for the next run)."""

    outcome = "incomplete"

    def __init__(self, message: str, summary: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message)
        self.summary = dict(summary or {})


class JobRefused(FedcloudSiteError):
    """A job refused to act because a safety check failed."""

    exit_status = 4
    outcome = "refused"


def exit_status_of(exc: BaseException) -> int:
    """The exit status an exception ends a command with: its own, or 1 for an unexpected one (a bug)."""
    return exc.exit_status if isinstance(exc, FedcloudSiteError) else FedcloudSiteError.exit_status


def cause_chain(exc: BaseException) -> List[str]:
    """``Type: message`` of each cause behind ``exc`` (``raise ... from``, or raised while handling), nearest first."""
    chain: List[str] = []
    seen = {id(exc)}
    cause = _cause_of(exc)
    while cause is not None and id(cause) not in seen:  # a cycle of causes is possible, if rare
        seen.add(id(cause))
        chain.append(f"{type(cause).__name__}: {cause}")
        cause = _cause_of(cause)
    return chain


def causes_field(exc: BaseException, verbose: bool) -> Dict[str, List[str]]:
    """``{"causes": [...]}`` to add to a log line when ``verbose`` and ``exc`` has causes, else nothing."""
    chain = cause_chain(exc) if verbose else []
    return {"causes": chain} if chain else {}


def _cause_of(exc: BaseException) -> Optional[BaseException]:
    if exc.__cause__ is not None:
        return exc.__cause__
    return None if exc.__suppress_context__ else exc.__context__


def describe(exc: BaseException, verbose: bool) -> str:
    """One line naming the error; with ``verbose`` each cause follows on its own ``caused by:`` line."""
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, FedcloudSiteError):
        text = f"{type(exc).__name__}: {text}"
    if verbose:
        text += "".join(f"\n  caused by: {cause}" for cause in cause_chain(exc))
    return text
