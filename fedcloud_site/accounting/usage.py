"""What a VM had used at a given instant: lifetime, status and cumulative durations.

All arithmetic is on whole UNIX epoch seconds computed from aware UTC datetimes, so the
result never depends on the host's timezone.

Durations are cumulative since the VM started (the APEL server subtracts the VM's
previous record to get a month's usage).  They never decrease between two instants:

* with running periods (OpenNebula history records) wall time is the running time
  inside them and suspended time is the rest;
* with a reported total of suspended seconds (as of the run's end ``T``), the
  suspension is assumed to have happened as late as possible, so at an earlier instant
  ``m`` the suspended time is ``max(0, S - (T - m))``;
* otherwise wall time is the time since creation and SuspendDuration is not sent.

Totals the backend reports only as of now (CPU seconds, network bytes) are spread over
earlier instants in proportion to wall time.

A VM that never ran (``VM.ever_ran`` False: still building, failed before it booted) used
nothing and gets no record at all, whatever state it ends in; nor does a VM for an instant
before it first ran (``VM.first_ran_at``, or the first entry of its state history).

Status at an instant before the run (a closed month's record) is the state the VM had then:
from its running periods (OpenNebula), else from its state history (Nova instance actions),
else its current state when it has not changed since that instant (``VM.updated_at`` at or
before it, or unknown); a VM that changed since, with no history to tell how, is reported
``started`` (it existed and held its resources; the change may be the suspension itself).

With ``count_suspended`` (``accounting.count_suspended_wall``) wall time is the whole time
since creation even where the backend records running periods, and no SuspendDuration is
sent; CPU time is then still the running time x vCPUs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from ..cloud.base import VM, BadCloudData, StateChange, VMState
from ..timeutil import month_start, parse_time, to_epoch
from .status import apel_status

GIB = 1 << 30


@dataclass(frozen=True)
class Lifetime:
    """When a VM existed: from ``start`` to ``end`` (None: still exists), as epoch seconds."""

    vm: VM
    start: int
    end: Optional[int]

    @classmethod
    def of(cls, vm: VM) -> Lifetime:
        """The VM's lifetime; BadCloudData (naming the VM) if its times make no sense."""
        start = to_epoch(vm.created_at)
        end: Optional[int] = None
        if vm.state is VMState.DELETED:
            ended = vm.ended_at or vm.updated_at
            if ended is None:
                raise BadCloudData(f"VM {vm.id} ({vm.name}): deleted but has neither an end nor an update time")
            end = to_epoch(ended)
            if end < start:
                raise BadCloudData(f"VM {vm.id} ({vm.name}): ended ({ended.isoformat()}) before it was created "
                                   f"({vm.created_at.isoformat()})")
        return cls(vm=vm, start=start, end=end)

    def exists_at(self, moment: int) -> bool:
        return self.start <= moment

    def ended_by(self, moment: int) -> bool:
        return self.end is not None and self.end <= moment

    def measured_at(self, moment: int) -> int:
        """The instant a record for ``moment`` describes: the end for a VM gone by then."""
        return self.end if self.end is not None and self.end <= moment else moment


@dataclass(frozen=True)
class Usage:
    """Cumulative figures of a VM at one instant."""

    measured: int  # epoch seconds the figures are for
    status: str  # started / suspended / completed
    wall: int
    suspended: Optional[int]
    cpu: int
    network_in_gib: Optional[int]
    network_out_gib: Optional[int]


def _running_seconds(vm: VM, start: int, upto: int) -> int:
    total = 0
    for period in vm.run_periods or ():
        begin = max(to_epoch(period.start), start)
        finish = min(to_epoch(period.end) if period.end is not None else upto, upto)
        if finish > begin:
            total += finish - begin
    return total


def _running_at(vm: VM, moment: int) -> bool:
    for period in vm.run_periods or ():
        if to_epoch(period.start) <= moment and (period.end is None or moment < to_epoch(period.end)):
            return True
    return False


def state_at(history: Sequence[StateChange], moment: int) -> Optional[VMState]:
    """The state of the last change at or before ``moment`` (None: the history starts later)."""
    state: Optional[VMState] = None
    for change in history:
        if to_epoch(change.at) > moment:
            break
        state = change.state
    return state


def ran_by(vm: VM, moment: int) -> bool:
    """Whether the VM had run by ``moment`` (a VM that never ran, or not yet, gets no record)."""
    if vm.ever_ran is False:
        return False
    if vm.first_ran_at is not None and to_epoch(vm.first_ran_at) > moment:
        return False
    if vm.state_history:
        first = vm.state_history[0]
        return to_epoch(first.at) <= moment and first.state is not VMState.ERROR
    return True


def _wall_and_suspended(life: Lifetime, measured: int, observed: int,
                        count_suspended: bool = False) -> Tuple[int, Optional[int]]:
    vm = life.vm
    elapsed = max(0, measured - life.start)
    if count_suspended:
        return elapsed, None
    if vm.run_periods is not None:
        wall = min(elapsed, _running_seconds(vm, life.start, measured))
        return wall, elapsed - wall
    if vm.suspended_seconds is not None:
        later = max(0, life.measured_at(observed) - measured)
        suspended = min(elapsed, max(0, int(vm.suspended_seconds) - later))
        return elapsed - suspended, suspended
    return elapsed, None


def _share(total: int, part: int, whole: int) -> int:
    """``total`` scaled by ``part / whole`` (all of it when ``part >= whole``)."""
    if part >= whole:
        return total
    return total * part // whole if whole > 0 else 0


def _past_status(life: Lifetime, moment: int, suspended: Optional[int]) -> str:
    """The Status of a VM alive at ``moment`` that is before the run (see the module docs)."""
    vm = life.vm
    if vm.run_periods is not None:
        return "started" if _running_at(vm, moment) else "suspended"
    if vm.state_history:
        state = state_at(vm.state_history, moment)
        return apel_status(state) if state is not None and state is not VMState.DELETED else "started"
    if vm.state is VMState.DELETED:
        return "started"  # deleted after the instant
    if vm.updated_at is not None and to_epoch(vm.updated_at) > moment:
        return "started"  # changed since, and the backend cannot tell how
    if vm.suspended_seconds is not None and not suspended:
        return "started"  # the reported suspension lies after this instant
    return apel_status(vm.state)


def usage_at(life: Lifetime, moment: int, observed: int, count_suspended: bool = False) -> Usage:
    """The VM's usage at ``moment``; the VM record describes the cloud as seen at ``observed``.

    Figures the backend only reports as totals at ``observed`` (CPU time, network bytes) are
    spread over earlier instants in proportion to wall time, so they never decrease.
    ``count_suspended``: wall time includes stopped and suspended time (see the module docs).
    """
    vm = life.vm
    measured = life.measured_at(moment)
    wall, suspended = _wall_and_suspended(life, measured, observed, count_suspended)
    final = moment >= observed or life.ended_by(moment)
    observed_wall = wall if final else _wall_and_suspended(life, life.measured_at(observed), observed,
                                                           count_suspended)[0]

    if life.ended_by(moment):
        status = "completed"
    elif final:
        status = apel_status(vm.state) if vm.state is not VMState.DELETED else "started"
    else:
        status = _past_status(life, moment, suspended)

    running = wall
    if count_suspended:  # CPU only while running, where the backend knows it
        running, _ = _wall_and_suspended(life, measured, observed)
    if vm.cpu_seconds is not None:
        cpu = _share(int(vm.cpu_seconds), wall, observed_wall)
    else:
        cpu = int(round(running * float(vm.vcpus)))
    net_in = net_out = None
    if vm.network_in_bytes is not None:
        net_in = _share(int(vm.network_in_bytes), wall, observed_wall) // GIB
    if vm.network_out_bytes is not None:
        net_out = _share(int(vm.network_out_bytes), wall, observed_wall) // GIB
    return Usage(measured=measured, status=status, wall=wall, suspended=suspended, cpu=cpu,
                 network_in_gib=net_in, network_out_gib=net_out)


def seconds_in_month(life: Lifetime, measured: int) -> int:
    """Seconds the VM held its resources in the calendar month of ``measured``, up to ``measured``."""
    first = to_epoch(month_start(parse_time(measured)))
    begin = max(first, life.start)
    if life.vm.run_periods is not None:
        return _running_seconds(life.vm, begin, measured)
    return max(0, measured - begin)
