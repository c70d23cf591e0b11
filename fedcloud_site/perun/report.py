"""Human-readable text: the plan (``--dry-run``) and the status (``fedcloud-site perun status``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterable, List, Mapping, Optional

from ..timeutil import iso_utc, parse_time
from .model import Snapshot
from .plan import Action, Plan


def _value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items() if v is not None) + "}"
    return str(value)


def describe_action(action: Action) -> str:
    """``update  jane@egi.eu  email: a@x -> b@x; x509_dns: [...] -> [...]  (attributes changed in Perun)``."""
    if action.kind == "create":
        after = action.after
        detail = (f"groups={_value(after.get('groups'))} dns={len(after.get('x509_dns') or [])} "
                  f"keys={len(after.get('ssh_keys') or [])}")
    elif action.kind == "delete":
        detail = ""
    else:
        detail = "; ".join(f"{f}: {_value(action.before.get(f))} -> {_value(action.after.get(f))}"
                           for f in action.changes)
    text = f"{action.kind:<8} {action.name}"
    if detail:
        text += f"  {detail}"
    return f"{text}  ({action.reason})"


def format_plan(plan: Plan, snapshot: Snapshot, covered: Iterable[str], refusals: List[str],
                skipped_vos: Mapping[str, str]) -> str:
    """The plan as an operator reads it before applying."""
    when = iso_utc(snapshot.generated_at) if snapshot.generated_at else "unknown"
    lines = [f"# input: {snapshot.source} ({snapshot.format}, generated {when}, {len(snapshot.users)} users, "
             f"sha256 {snapshot.digest[:12]})",
             f"# VOs synchronised: {', '.join(sorted(covered)) or 'none'}"]
    for vo, why in sorted(skipped_vos.items()):
        lines.append(f"# VO {vo} left as is: {why}")
    for action in plan.actions:
        lines.append(describe_action(action))
    for pending in plan.pending:
        state = f"blocked: {pending.blocked}" if pending.blocked else f"due {iso_utc(pending.due)}"
        lines.append(f"{'pending':<8} {pending.name}  disabled since {iso_utc(pending.since)}, deletion {state}")
    for name in plan.conflicts:
        lines.append(f"{'conflict':<8} {name}  exists but is not managed by fedcloud-site: left alone")
    counts = ", ".join(f"{n} {k}" for k, n in plan.counts.items())
    lines.append(f"# plan: {counts}; {plan.unchanged} unchanged, {len(plan.pending)} pending deletion, "
                 f"{len(plan.conflicts)} conflicts, {plan.managed} managed users")
    for reason in refusals:
        lines.append(f"# REFUSED: {reason}")
    return "\n".join(lines) + "\n"


def format_status(state: Mapping[str, Any], journal: Optional[Mapping[str, Any]], pending_inputs: List[str]) -> str:
    """``fedcloud-site perun status``: last run, last input applied, users, pending deletions."""
    lines = []
    last_run = state.get("last_run")
    if last_run:
        lines.append(f"last run:          {last_run.get('time')}  {last_run.get('result')}"
                     + (f": {last_run.get('reason')}" if last_run.get("reason") else ""))
        summary = last_run.get("summary") or {}
        if summary:
            lines.append("                   " + ", ".join(f"{k}={v}" for k, v in sorted(summary.items())))
    else:
        lines.append("last run:          never")
    applied = state.get("last_applied")
    if applied:
        lines.append(f"last applied:      {applied.get('applied_at')}  {applied.get('source')} "
                     f"({applied.get('format')}, generated {applied.get('generated_at')})")
    managed = state.get("managed_users")
    lines.append(f"managed users:     {managed if managed is not None else 'unknown'}")
    members = state.get("vo_members") or {}
    if members:
        lines.append("VO members:        " + ", ".join(f"{vo}={n}" for vo, n in sorted(members.items())))
    disabled = state.get("disabled") or {}
    details = {p["name"]: p for p in state.get("pending_deletions") or []}
    lines.append(f"pending deletions: {len(disabled)}")
    grace = state.get("grace_period")
    for name, entry in sorted(disabled.items()):
        since = entry.get("since")
        known = details.get(name) or {}
        if known.get("blocked"):
            due = f", deletion blocked: {known['blocked']}"
        elif grace is not None and since:
            due = f", deletion due {iso_utc(parse_time(since) + timedelta(seconds=float(grace)))}"
        else:
            due = ""
        lines.append(f"  {name}  disabled since {since}{due}")
    if journal is not None:
        lines.append(f"interrupted apply: {journal.get('left')} of {journal.get('total')} changes left "
                     f"(finished on the next run)")
    if pending_inputs:
        lines.append(f"pending inputs:    {', '.join(pending_inputs)}")
    return "\n".join(lines) + "\n"
