"""The dry run: a plan said in words (one log event per action that would change something), counted as
``would_*`` in the run summary.  It prints the plan the real run would apply; nothing is written."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from .plan import (
    Action,
    Adopt,
    AwaitApproval,
    Claim,
    Delete,
    Download,
    Fail,
    Plan,
    Problem,
    Reactivate,
    RemoveDuplicate,
    Retire,
    RetryLater,
    UpdateMetadata,
    Vanished,
)
from .summary import Summary


def describe(action: Action) -> Optional[Tuple[str, str, Dict[str, Any]]]:
    """(counted as, event, details) of an action that changes the cloud or a version's state; None for pure
    bookkeeping (recording a listed version, templates kept in line)."""
    if isinstance(action, Problem):
        return None
    subscription, identifier, sha512 = action.key
    where: Dict[str, Any] = dict(subscription=subscription, identifier=identifier)
    if isinstance(action, Download):
        return "register", "dry run: would download and register", dict(
            where, version=action.entry.version, size=action.entry.size, current_state=action.state,
            replaces=[key[2][:16] for key in action.replaces])
    if isinstance(action, Adopt):
        return "adopt", "dry run: would adopt the image another tool registered", dict(
            where, image_id=action.image_id, registered_by=action.origin)
    if isinstance(action, Reactivate):
        return "reactivate", "dry run: would reactivate", dict(where, image_id=action.image_id)
    if isinstance(action, UpdateMetadata):
        return "update", "dry run: would update name and properties", dict(
            where, image_id=action.image_id, properties=sorted(action.changes), new_name=action.new_name)
    if isinstance(action, RemoveDuplicate):
        return "delete_duplicate", "dry run: would delete a duplicate copy", dict(
            where, image_id=action.image_id, kept=action.kept)
    if isinstance(action, Claim):
        return "claim", "dry run: would record our copy found in the cloud", dict(where, image_id=action.image_id)
    if isinstance(action, Vanished):
        return "reregister", "dry run: registered image vanished; would register it again", dict(
            where, image_id=action.image_id)
    if isinstance(action, AwaitApproval):
        return "await_approval", "dry run: would wait for 'images approve'", where
    if isinstance(action, RetryLater):
        return "retry_later", "dry run: failed before; not retried yet", dict(
            where, reason=action.reason, next_attempt=action.next_attempt)
    if isinstance(action, Fail):
        return "fail", "dry run: would fail", dict(where, reason=action.reason)
    if isinstance(action, Retire):
        if action.registered:
            return "deprecate", "dry run: would deprecate", dict(
                where, version=action.version, image_id=action.image_id, reason=action.reason)
        return "drop", "dry run: would drop (never registered)", dict(where, version=action.version,
                                                                       reason=action.reason)
    if isinstance(action, Delete):
        return "delete", "dry run: would delete (unless VMs still use it)", dict(
            where, version=action.version, image_id=action.image_id, reason=action.reason)
    return None


def preview(plan: Plan, summary: Summary, log: Any) -> None:
    """Log and count every action of ``plan`` that would change something; the versions a download
    replaces are said as deprecations once the new version is active."""
    said_any = False
    for action in plan.actions():
        if isinstance(action, Problem):
            summary.problem(action.subscription, action.reason)
            log.error("dry run: subscription cannot be synced", subscription=action.subscription, error=action.reason)
            continue
        said = describe(action)
        if said is None:
            continue
        counted, event, details = said
        said_any = True
        summary.would[counted] = summary.would.get(counted, 0) + 1
        log.info(event, **details)
        if isinstance(action, Download):
            for key in action.replaces:
                summary.would["deprecate"] = summary.would.get("deprecate", 0) + 1
                log.info("dry run: would deprecate once the new version is active", subscription=key[0],
                         identifier=key[1], sha512=key[2][:16], reason=f"replaced by version {action.entry.version}")
    if not said_any:
        log.info("dry run: nothing would change", subscriptions=len(plan.subscriptions))
