"""VM state -> APEL ``Status``: one explicit table, used for every backend.

Backends translate their own vocabulary (Nova status, OpenNebula state codes) into
:class:`~fedcloud_site.cloud.base.VMState`; this table maps those to the three values
we send.

==========  ==========  ===============================================================
VMState     Status      why
==========  ==========  ===============================================================
pending     started     created and holding its quota (a VM that never ran gets no record)
running     started
paused      suspended   memory kept, not running; can resume
suspended   suspended
stopped     suspended   shut off but still allocated (disk, IPs); can be started again,
                        so it is not "completed" (cASO reports SHUTOFF as started)
error       suspended   not running but not gone; it can be recovered or deleted later
unknown     started     the manager lost track of it (e.g. host down); assume it runs
deleted     completed   the only state with an EndTime
==========  ==========  ===============================================================

This table gives the status at the run's instant; a closed month's record takes the status
the VM had at the month's end (see :mod:`.usage`).  Wall time: when the backend records
running periods (OpenNebula history) only running time counts (unless
``accounting.count_suspended_wall``); otherwise wall time is the time since creation minus
the suspended time the backend reports (``VM.suspended_seconds``).
"""

from __future__ import annotations

from typing import Mapping

from ..cloud.base import VMState

STATUS_OF_STATE: Mapping[VMState, str] = {
    VMState.PENDING: "started",
    VMState.RUNNING: "started",
    VMState.PAUSED: "suspended",
    VMState.SUSPENDED: "suspended",
    VMState.STOPPED: "suspended",
    VMState.ERROR: "suspended",
    VMState.UNKNOWN: "started",
    VMState.DELETED: "completed",
}

assert set(STATUS_OF_STATE) == set(VMState), "every VMState needs an APEL status"


def apel_status(state: VMState) -> str:
    """The APEL ``Status`` for a VM currently in ``state``."""
    return STATUS_OF_STATE[state]
