"""The simulated OpenNebula objects and their life cycle.

Objects hold what oned keeps in its database; :mod:`.render` turns them into the
XML documents of the XML-RPC API.  VM life-cycle operations (deploy, poweroff,
suspend, resume, migrate, terminate...) write history records the way oned does:
every period a VM spends on a host is one HISTORY record whose RSTIME/RETIME
bound the running time, closed with the ACTION that ended it.  All times come
from the cloud's clock (:meth:`SimCloud.now`), which tests can set and move.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from pyone import HISTORY_ACTION, IMAGE_STATES, LCM_STATE, VM_STATE

from .templates import Template

Permissions = Tuple[int, int, int, int, int, int, int, int, int]
OWNER_ONLY: Permissions = (1, 1, 0, 0, 0, 0, 0, 0, 0)


def action_code(name: str) -> int:
    """History ACTION number of an action name such as ``"terminate"``."""
    return int(HISTORY_ACTION[name].value)


@dataclass
class SimHistory:
    """One HISTORY record: a stay of a VM on a host."""

    seq: int
    hid: int
    hostname: str
    cid: int
    stime: int
    etime: int = 0
    pstime: int = 0
    petime: int = 0
    rstime: int = 0
    retime: int = 0
    estime: int = 0
    eetime: int = 0
    action: int = 0
    ds_id: int = 0
    vm_mad: str = "kvm"
    tm_mad: str = "ssh"
    uid: int = -1
    gid: int = -1
    req_id: int = -1


@dataclass
class SimVM:
    id: int
    uid: int
    gid: int
    name: str
    state: int
    lcm_state: int
    stime: int
    etime: int = 0
    template: Template = field(default_factory=dict)
    user_template: Template = field(default_factory=dict)
    monitoring: Dict[str, str] = field(default_factory=dict)
    history: List[SimHistory] = field(default_factory=list)
    permissions: Permissions = OWNER_ONLY
    uname: str = ""
    gname: str = ""
    prev_state: int = 0
    prev_lcm_state: int = 0
    #: rendered XML cache (kind -> text), cleared on every change
    cache: Dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def changed(self) -> None:
        self.cache.clear()

    @property
    def deploy_id(self) -> str:
        return f"one-{self.id}" if self.history else ""


@dataclass
class SimUser:
    id: int
    name: str
    password: str
    gid: int
    groups: List[int]
    auth_driver: str = "core"
    enabled: bool = True
    template: Template = field(default_factory=dict)
    quota: Dict[str, str] = field(default_factory=dict)  # VMS, CPU, MEMORY, ... limits


@dataclass
class SimGroup:
    id: int
    name: str
    template: Template = field(default_factory=dict)
    admins: List[int] = field(default_factory=list)
    quota: Dict[str, str] = field(default_factory=dict)


@dataclass
class SimImage:
    id: int
    uid: int
    gid: int
    name: str
    datastore_id: int
    regtime: int
    type: int = 0  # OS
    state: int = int(IMAGE_STATES.READY)
    path: str = ""
    source: str = ""
    format: str = "qcow2"
    size_mb: int = 0
    persistent: int = 0
    running_vms: int = 0
    vms: List[int] = field(default_factory=list)
    template: Template = field(default_factory=dict)
    permissions: Permissions = OWNER_ONLY
    modtime: int = 0
    ready_at: float = 0.0  # wall-clock time at which a LOCKED image becomes READY
    locked_reads: int = 0  # reads (info, pool listing) that still find it LOCKED, whatever the clock says


@dataclass
class SimTemplate:
    id: int
    uid: int
    gid: int
    name: str
    regtime: int
    template: Template = field(default_factory=dict)
    permissions: Permissions = OWNER_ONLY


@dataclass
class SimHost:
    id: int
    name: str
    cluster_id: int
    total_cpu: int  # percent: 100 per core
    total_mem_kb: int
    im_mad: str = "kvm"
    vm_mad: str = "kvm"
    state: int = 2  # MONITORED
    template: Template = field(default_factory=dict)


@dataclass
class SimCluster:
    id: int
    name: str
    template: Template = field(default_factory=dict)


@dataclass
class SimDatastore:
    id: int
    name: str
    type: int  # 0 image, 1 system, 2 file
    ds_mad: str = "fs"
    tm_mad: str = "ssh"
    base_path: str = ""
    total_mb: int = 1024 * 1024
    free_mb: int = 1024 * 1024
    cluster_ids: List[int] = field(default_factory=lambda: [0])
    template: Template = field(default_factory=dict)


class SimCloud:
    """All simulated objects, their id counters and the clock, behind one lock."""

    def __init__(self, now: Optional[int] = None) -> None:
        self.lock = threading.RLock()
        self._now = now
        self.clock: Callable[[], float] = time.time
        self.vms: Dict[int, SimVM] = {}
        self.users: Dict[int, SimUser] = {}
        self.groups: Dict[int, SimGroup] = {}
        self.images: Dict[int, SimImage] = {}
        self.templates: Dict[int, SimTemplate] = {}
        self.hosts: Dict[int, SimHost] = {}
        self.clusters: Dict[int, SimCluster] = {}
        self.datastores: Dict[int, SimDatastore] = {}
        self.default_group_quota: Dict[str, str] = {}
        self.default_user_quota: Dict[str, str] = {}
        self.version = "6.10.0"
        #: static-site id -> OpenNebula id, per kind ("group", "user", "image", "template", "vm", "host")
        self.id_map: Dict[str, Dict[str, int]] = {}
        self._sorted_vm_ids: Optional[List[int]] = None
        self._last_ids: Dict[int, int] = {}  # id() of a table -> highest id given out

    # -- clock -------------------------------------------------------------------------
    def now(self) -> int:
        """Current epoch seconds: the injected time if set, else the wall clock."""
        return int(self._now) if self._now is not None else int(self.clock())

    def set_now(self, epoch: Optional[float]) -> None:
        """Freeze the clock at ``epoch`` (None: follow the wall clock again)."""
        self._now = int(epoch) if epoch is not None else None

    def advance(self, seconds: float) -> int:
        """Move the frozen clock forward; returns the new time."""
        self._now = self.now() + int(seconds)
        return self._now

    # -- ids ---------------------------------------------------------------------------
    def next_id(self, table: Dict[int, Any], floor: int = 0) -> int:
        """The id of a new object of ``table``: as oned, one more than the highest ever given (ids of deleted
        objects are not reused)."""
        oid = max([floor - 1, self._last_ids.get(id(table), -1), *table]) + 1
        self._last_ids[id(table)] = oid
        return oid

    def sorted_vm_ids(self) -> List[int]:
        if self._sorted_vm_ids is None:
            self._sorted_vm_ids = sorted(self.vms)
        return self._sorted_vm_ids

    def add_vm(self, vm: SimVM) -> SimVM:
        with self.lock:
            self.vms[vm.id] = vm
            self._sorted_vm_ids = None
        return vm

    # -- VM life cycle -----------------------------------------------------------------
    def vm(self, vm_id: int) -> SimVM:
        return self.vms[vm_id]

    def _set_state(self, vm: SimVM, state: str, lcm: str = "LCM_INIT") -> None:
        vm.prev_state, vm.prev_lcm_state = vm.state, vm.lcm_state
        vm.state = int(VM_STATE[state].value)
        vm.lcm_state = int(LCM_STATE[lcm].value)
        vm.changed()

    def _open_history(self, vm: SimVM, host_id: int) -> SimHistory:
        host = self.hosts[host_id]
        now = self.now()
        record = SimHistory(seq=len(vm.history), hid=host.id, hostname=host.name, cid=host.cluster_id,
                            stime=now, pstime=now, petime=now, rstime=now, vm_mad=host.vm_mad)
        vm.history.append(record)
        return record

    def _close_history(self, vm: SimVM, action: str) -> None:
        if not vm.history:
            return
        record = vm.history[-1]
        if record.etime:
            return
        now = self.now()
        if record.rstime and not record.retime:
            record.retime = now
        record.estime = record.eetime = record.etime = now
        record.action = action_code(action)

    def deploy(self, vm_id: int, host_id: Optional[int] = None) -> SimVM:
        """PENDING -> ACTIVE/RUNNING on a host (a new history record)."""
        with self.lock:
            vm = self.vms[vm_id]
            self._open_history(vm, host_id if host_id is not None else min(self.hosts))
            self._set_state(vm, "ACTIVE", "RUNNING")
            return vm

    def _leave_host(self, vm_id: int, action: str, state: str) -> SimVM:
        with self.lock:
            vm = self.vms[vm_id]
            self._close_history(vm, action)
            self._set_state(vm, state)
            return vm

    def poweroff(self, vm_id: int) -> SimVM:
        return self._leave_host(vm_id, "poweroff", "POWEROFF")

    def suspend(self, vm_id: int) -> SimVM:
        return self._leave_host(vm_id, "suspend", "SUSPENDED")

    def stop(self, vm_id: int) -> SimVM:
        return self._leave_host(vm_id, "stop", "STOPPED")

    def undeploy(self, vm_id: int) -> SimVM:
        return self._leave_host(vm_id, "undeploy", "UNDEPLOYED")

    def resume(self, vm_id: int, host_id: Optional[int] = None) -> SimVM:
        """Back to RUNNING from POWEROFF/SUSPENDED/STOPPED/UNDEPLOYED: a new history record."""
        with self.lock:
            vm = self.vms[vm_id]
            last_host = vm.history[-1].hid if vm.history else min(self.hosts)
            self._open_history(vm, host_id if host_id is not None else last_host)
            self._set_state(vm, "ACTIVE", "RUNNING")
            return vm

    def migrate(self, vm_id: int, host_id: int) -> SimVM:
        with self.lock:
            vm = self.vms[vm_id]
            self._close_history(vm, "migrate")
            self._open_history(vm, host_id)
            vm.changed()
            return vm

    def terminate(self, vm_id: int) -> SimVM:
        """Any state -> DONE; ETIME is set."""
        with self.lock:
            vm = self._leave_host(vm_id, "terminate", "DONE")
            vm.etime = self.now()
            return vm

    def set_state(self, vm_id: int, state: str, lcm: str = "LCM_INIT") -> SimVM:
        """Force a STATE/LCM_STATE pair (names as in pyone.VM_STATE / pyone.LCM_STATE), history untouched."""
        with self.lock:
            vm = self.vms[vm_id]
            self._set_state(vm, state, lcm)
            return vm

    def set_monitoring(self, vm_id: int, **values: Any) -> SimVM:
        with self.lock:
            vm = self.vms[vm_id]
            vm.monitoring.update({k.upper(): str(v) for k, v in values.items()})
            vm.changed()
            return vm
