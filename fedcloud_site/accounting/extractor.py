"""The extractor: per project, from the cloud's VM listing to records in the outgoing queue.

Windows and month boundaries
    A project's state says up to which instant ``L`` its records are in the queue.  A run at
    ``T`` covers ``(L, T]``, split at month starts: for every month start ``B`` in ``(L, T]``
    there is a measurement at ``B - 1s`` (the last second of the month, so the APEL server
    files it under that month), then one at ``T``.  After an outage of several months every
    VM alive in a month gets that month's record, so the server's month-by-month
    subtraction of cumulative durations stays right.  All measurements of a run come from
    ONE paged listing per project (``list_vms(project, active_since=L)``), or, where the backend
    pages the whole VM pool for each project anyway (OpenNebula), from ONE listing of all
    projects from the earliest window start (``list_vms(None, active_since=min L)``), each VM
    handed to its project, which drops the VMs that ended before its own window.  Never a
    call per VM.

Which VMs get a record for the period ``(P, M]``
    Those created by ``M`` and not already ended at ``P``.  A VM that ended within the
    period gets its single ``completed`` record (measured at its end); a VM that ended
    after ``M`` is reported ``started`` at ``M``.

Exactly once, and no gaps
    Messages of a project are written with fsync into the dirq queue, and only then is the
    project's state advanced to ``T`` (atomically).  A crash, kill, cloud error or full disk
    anywhere before that leaves the state at ``L``: the next run covers ``(L, T']`` and
    sends again the records of the interrupted window, measured at ``T' >= T``.  These are
    the same VMs with cumulative figures that are equal or larger, and the APEL server keeps
    one cloud record per VM and month, replacing it only with a later measurement
    (``RecordCreateTime``; ``EndTime`` for completed VMs), so a re-sent record replaces the
    one of the interrupted run instead of adding to it.  Completed records are byte-identical
    when re-sent.  Accelerator records (one per VM and month) and storage records (one record
    id per volume and month) are replaced the same way.  Hence: nothing is lost (the state
    never passes a window whose messages are not durably queued) and nothing is counted twice.
    With one listing of all projects, every project still has its own messages and its own
    state, advanced after its own last message; a listing that fails leaves all of them where
    they were, a project that fails afterwards (its floating IPs, its volumes) only itself.

Bad data
    A VM the backend cannot interpret, or whose times make no sense, is logged with its id
    and skipped; the other VMs and projects go on.  A running VM skipped once is fully
    counted by its next good record (durations are cumulative).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from .. import __version__
from ..cloud import backend_declaration
from ..cloud.base import (
    VM,
    BadCloudData,
    CloudAuthError,
    CloudBackend,
    CloudError,
    FloatingIP,
    NotFound,
    NotSupported,
    Project,
    VMState,
    Volume,
)
from ..timeutil import month_start, next_month, parse_time, to_epoch
from .messages import FORMATS, Batcher, BufferBudget, MessageSink, QueueWriteError
from .records import AcceleratorRecord, BadRecord, CloudRecord, IPRecord, StorageRecord
from .settings import Settings
from .usage import Lifetime, ran_by, seconds_in_month, usage_at

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


#: what the partly filled messages of all projects may hold together during one listing of all projects
SHARED_BUFFER_BYTES = 4 << 20


class Stopped(Exception):
    """A shutdown was requested; the current project was abandoned (its state not advanced)."""


@dataclass(frozen=True)
class Target:
    """A project to account, with the VO and FQAN its records carry."""

    project: Project
    vo: str
    fqan: str


@dataclass
class ProjectResult:
    vms: int = 0
    bad_vms: int = 0
    records: Dict[str, int] = field(default_factory=dict)
    messages: int = 0
    measurements: int = 0
    errors: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"vms": self.vms, "bad_vms": self.bad_vms, "messages": self.messages,
                                "measurements": self.measurements}
        data.update({f"{kind}_records": n for kind, n in sorted(self.records.items())})
        return data


@dataclass(frozen=True)
class Window:
    """A project and the instant its extraction starts from (its state, or the first-run start)."""

    target: Target
    start: datetime


@dataclass
class Outcome:
    """How a window ended: its result (messages all in the sinks), or the error that stopped it."""

    window: Window
    result: Optional[ProjectResult] = None
    error: Optional[Exception] = None


def whole_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def previous_month_start(now: datetime) -> datetime:
    """Start of the month before the month of ``now`` (the default first-run start)."""
    return month_start(month_start(now) - timedelta(days=1))


def measurement_instants(start: int, end: int) -> List[int]:
    """Epoch instants measuring ``(start, end]``: the last second of each month crossed, then ``end``."""
    instants: List[int] = []
    boundary = next_month(parse_time(start))
    while to_epoch(boundary) <= end:
        last_second = to_epoch(boundary) - 1
        if last_second > start:
            instants.append(last_second)
        boundary = next_month(boundary)
    if end > start and (not instants or instants[-1] != end):
        instants.append(end)
    return instants


def cloud_type_of(config: Any) -> str:
    configured = config.section(Settings).cloud_type
    if configured:
        return str(configured)
    return f"fedcloud-site/{__version__} ({backend_declaration(config.cloud.backend).label})"


def select_targets(config: Any, projects: Iterable[Project], only: Optional[str] = None
                   ) -> Tuple[List[Target], List[str]]:
    """The projects to account (with VO and FQAN) and an error text per project that cannot be."""
    settings = config.section(Settings)
    wanted = [only] if only else list(settings.projects)
    ignored = set(settings.ignore_projects)
    targets: List[Target] = []
    errors: List[str] = []
    found: Set[str] = set()
    for project in projects:
        names = {project.id, project.name}
        if wanted and not names & set(wanted):
            continue
        found |= names & set(wanted)
        if names & ignored and not only:
            continue
        vo = config.vo_of_project(project.id, project.name, project.properties)
        if vo is None:
            errors.append(f"project {project.id} ({project.name}) maps to no VO: list it under "
                          f"vos.<VO>.projects or set its property {config.cloud.vo_property!r} "
                          f"(or add it to accounting.ignore_projects)")
            continue
        vo_settings = config.vos.get(vo)
        fqan = vo_settings.fqan if vo_settings is not None and vo_settings.fqan else vo
        targets.append(Target(project=project, vo=vo, fqan=fqan))
    for name in wanted:
        if name not in found:
            where = "--project" if only else "accounting.projects"
            errors.append(f"project {name!r} ({where}) does not exist in the cloud")
    return targets, errors


class Extractor:
    """Builds and sends the records of projects for a window; caches flavours, images, users per run."""

    def __init__(self, config: Any, cloud: CloudBackend, sinks: Mapping[str, MessageSink], observed: datetime,
                 log: Any, stop: Optional[Callable[[], bool]] = None) -> None:
        self.config = config
        self.settings = config.section(Settings)
        self.cloud = cloud
        self.sinks = sinks
        self.observed = to_epoch(observed)
        self.log = log
        self.stop = stop or (lambda: False)
        self.site = config.site.name
        self.service = config.site.compute_service
        self.endpoint = config.site.endpoint or config.site.name
        self.cloud_type = cloud_type_of(config)
        self.kinds = list(self.settings.record_types)
        self._images: Optional[Dict[str, str]] = None
        self._users: Optional[Dict[str, str]] = None
        self._user_names: Dict[str, str] = {}
        # listings of all projects: how many, VMs of projects not accounted, peak of held message bytes,
        # messages sent early to stay under the buffer budget, VMs the backend could not read
        self.shared_listings = 0
        self.other_vms = 0
        self.buffer_peak = 0
        self.early_messages = 0
        self.unattributed_errors: List[str] = []
        # VM state histories read for closed months' statuses, and those the backend could not give
        self.history_reads = 0
        self.history_unreadable = 0

    # -- per-run caches -------------------------------------------------------------------
    def image_ref(self, image_id: Optional[str]) -> Optional[str]:
        """The marketplace identifier of an image when known, else its local id."""
        if not image_id:
            return None
        if self._images is None:
            self._images = {}
            try:
                for image in self.cloud.list_images():
                    for prop in self.settings.image_id_properties:
                        value = image.properties.get(prop)
                        if value:
                            self._images[image.id] = value
                            break
            except (CloudError, NotSupported) as exc:
                self.log.warning("cannot list images, sending local image ids", error=str(exc))
        return self._images.get(image_id, image_id)

    def user_name(self, user_id: Optional[str], hint: Optional[str] = None) -> Optional[str]:
        """The global name of a local user: from the VM, else from the backend's user list."""
        if hint:
            if user_id:
                self._user_names.setdefault(user_id, hint)
            return hint
        if not user_id:
            return None
        if user_id in self._user_names:
            return self._user_names[user_id]
        if self._users is None:
            self._users = {}
            if self.settings.lookup_user_names:
                try:
                    for user in self.cloud.list_users():
                        self._users[user.id] = user.x509_dns[0] if user.x509_dns else user.name
                except NotSupported:
                    pass
                except CloudError as exc:
                    self.log.warning("cannot list users, GlobalUserName left out", error=str(exc))
        return self._users.get(user_id)

    def vm_uuid(self, vm: VM) -> str:
        """The VM's id when it is a UUID; else ``<endpoint>/compute/<id> <creation time>`` (unique
        across sites and id reuse, the form oneacct-export used for OpenNebula)."""
        if _UUID.match(vm.id):
            return vm.id
        created = vm.created_at.astimezone(timezone.utc)
        return f"{self.endpoint}/compute/{vm.id} {created.strftime('%Y-%m-%d %H:%M:%S')}+00:00"

    # -- records --------------------------------------------------------------------------------
    def cloud_record(self, target: Target, life: Lifetime, moment: int) -> Tuple[CloudRecord, int]:
        vm = life.vm
        usage = usage_at(life, moment, self.observed, self.settings.count_suspended_wall)
        sized = bool(vm.vcpus or vm.ram_mb)
        bench = vm.benchmark_type is not None and vm.benchmark_value is not None
        record = CloudRecord(
            vm_uuid=self.vm_uuid(vm), site_name=self.site, fqan=target.fqan, status=usage.status,
            start_time=life.start, measurement_time=usage.measured, cloud_compute_service=self.service,
            machine_name=vm.name, local_user_id=vm.user_id, local_group_id=target.project.id,
            global_user_name=self.user_name(vm.user_id, vm.user_name),
            end_time=life.end if usage.status == "completed" else None,
            suspend_duration=usage.suspended, wall_duration=usage.wall, cpu_duration=usage.cpu,
            cpu_count=float(vm.vcpus) if sized else None, network_inbound=usage.network_in_gib,
            network_outbound=usage.network_out_gib, public_ip_count=vm.public_ip_count,
            memory=vm.ram_mb if sized else None, disk=vm.disk_gb if sized else None,
            image_id=self.image_ref(vm.image_id), cloud_type=self.cloud_type,
            benchmark_type=vm.benchmark_type if bench else None, benchmark=vm.benchmark_value if bench else None)
        return record, usage.measured

    def accelerator_record(self, target: Target, life: Lifetime, measured: int) -> Optional[AcceleratorRecord]:
        acc = life.vm.accelerator
        if acc is None or acc.count <= 0:
            return None
        when = parse_time(measured)
        model = " ".join(part for part in (acc.vendor, acc.model) if part)
        return AcceleratorRecord(
            measurement_month=when.month, measurement_year=when.year, associated_record=self.vm_uuid(life.vm),
            fqan=target.fqan, site_name=self.site, count=acc.count,
            available_duration=seconds_in_month(life, measured), type=acc.type, model=model or None,
            global_user_name=self.user_name(life.vm.user_id, life.vm.user_name))

    def vm_fragments(self, target: Target, life: Lifetime, instants: List[int], start: int,
                     ips: Optional[IPTally]) -> List[Tuple[str, str]]:
        """Rendered records of one VM for each measurement it needs (BadRecord if any cannot be sent)."""
        fragments: List[Tuple[str, str]] = []
        if life.vm.ever_ran is False:
            return fragments  # it never ran: no usage, no record (see usage.py)
        life = self.with_history(life, instants, start)
        previous = start
        for moment in instants:
            if not life.exists_at(moment) or not ran_by(life.vm, moment):
                previous = moment
                continue
            if life.ended_by(previous):
                break
            record, measured = self.cloud_record(target, life, moment)
            if "cloud" in self.kinds:
                fragments.append(("cloud", FORMATS["cloud"].fragment(record)))
            if "accelerator" in self.kinds:
                acc = self.accelerator_record(target, life, measured)
                if acc is not None:
                    fragments.append(("accelerator", FORMATS["accelerator"].fragment(acc)))
            if ips is not None and not life.ended_by(moment):
                ips.add_vm(moment, life.vm)
            if life.ended_by(moment):
                break
            previous = moment
        return fragments

    def with_history(self, life: Lifetime, instants: List[int], start: int) -> Lifetime:
        """``life`` with the VM's state history when a record for an instant before the run needs it.

        Only for a VM alive at such an instant (a closed month's end) whose state may have changed since
        (``updated_at`` after it) and whose backend records neither running periods nor the history in the
        listing: one history read (Nova: its instance actions) per such VM, only in runs that close a month.
        Where the backend cannot tell (no history, VM purged, reading forbidden) the rule of usage.py applies.
        """
        vm = life.vm
        if vm.run_periods is not None or vm.state_history is not None or vm.updated_at is None:
            return life
        past = [m for m in instants if start < m < self.observed and life.exists_at(m) and not life.ended_by(m)]
        if not past or to_epoch(vm.updated_at) <= past[0]:
            return life
        self.history_reads += 1
        try:
            history = self.cloud.vm_state_history(vm, parse_time(past[0]))
        except (NotFound, NotSupported, CloudAuthError) as exc:
            self.history_unreadable += 1
            self.log.warning("VM state history unreadable: a closed month's status follows the documented rule",
                             vm=vm.id, error=str(exc))
            return life
        if history is None:
            return life
        return Lifetime(vm=replace(vm, state_history=tuple(history)), start=life.start, end=life.end)

    def storage_fragments(self, target: Target, volume: Volume, instants: List[int], start: int
                          ) -> List[Tuple[str, str]]:
        begin = to_epoch(volume.created_at)
        end = to_epoch(volume.deleted_at) if volume.deleted_at is not None else None
        if end is not None and end < begin:
            raise BadCloudData(f"volume {volume.id} ({volume.name}): deleted before it was created")
        fragments: List[Tuple[str, str]] = []
        previous = start
        for moment in instants:
            if begin > moment:
                previous = moment
                continue
            if end is not None and end <= previous:
                break
            measured = end if end is not None and end <= moment else moment
            when = parse_time(measured)
            record = StorageRecord(
                record_id=f"{self.site}/{volume.id}/{when.year:04d}-{when.month:02d}", create_time=measured,
                storage_system=self.service, site=self.site, group=target.fqan,
                start_time=max(begin, to_epoch(month_start(when))), end_time=measured,
                resource_capacity_used=int(volume.size_gb) << 30, local_user=volume.user_id,
                local_group=target.project.id, user_identity=self.user_name(volume.user_id))
            fragments.append(("storage", FORMATS["storage"].fragment(record)))
            if end is not None and end <= moment:
                break
            previous = moment
        return fragments

    # -- runs of projects ---------------------------------------------------------------------------
    def lists_all_projects(self, due: int) -> bool:
        """Whether ``due`` project windows are best served by ONE VM listing of all projects.

        ``accounting.vm_listing`` decides; ``auto`` asks the backend: where it reads the whole
        VM pool to list one project (OpenNebula: oned cannot filter the pool by group), one
        listing for all costs the pages of one instead of the pages times the projects.  Where
        the cloud filters by project (OpenStack), per-project listings cost only the accounted
        projects' pages, while a listing of all would also page the VMs of every project that
        is not accounted.  A single project is always listed on its own.
        """
        if due < 2:
            return False
        mode = self.settings.vm_listing
        if mode != "auto":
            return bool(mode == "all_projects")
        return not self.cloud.filters_vms_by_project

    def extract(self, target: Target, start: datetime, end: datetime) -> ProjectResult:
        """Send the records of ``target`` for ``(start, end]`` from one listing of its own VMs; raises
        CloudError, QueueWriteError, Stopped."""
        run = ProjectRun(self, target, start, end)
        if not run.instants:
            return run.result
        run.open()
        with self.cloud.skipping_bad_records(run.bad):
            for vm in self.cloud.list_vms(target.project.id, active_since=start):
                if self.stop():
                    raise Stopped(f"stopped while extracting project {target.project.id}")
                run.add_vm(vm)
        return run.close()

    def extract_windows(self, windows: Sequence[Window], end: datetime,
                        all_projects: Optional[bool] = None) -> Iterator[Outcome]:
        """One :class:`Outcome` per window, in order, each as soon as that project's messages are in
        its sinks (the caller advances the project's state before asking for the next outcome).

        Per project (default where the cloud filters by project): one listing each, a failure
        costs only its project.  All projects (``all_projects``, see :meth:`lists_all_projects`):
        the projects' floating IPs first (a failure there costs only its project), then ONE listing
        of all projects' VMs from the earliest window start, each VM handed to its project's run,
        which keeps only the VMs alive in its own window; then per project its IP and storage
        records and its last messages.  A failure of the shared listing, of the queue or a shutdown
        during it leaves every project of the pass unextracted (states unchanged, retried next run).
        Memory stays bounded: one partly filled message per project and record type, all of them
        together under a :class:`BufferBudget`.
        """
        if all_projects is None:
            all_projects = self.lists_all_projects(len(windows))
        if not all_projects:
            for window in windows:
                if self.stop():
                    yield Outcome(window, error=Stopped("stopped before all projects were extracted"))
                    return
                try:
                    yield Outcome(window, result=self.extract(window.target, window.start, end))
                except (CloudError, QueueWriteError, Stopped) as exc:
                    yield Outcome(window, error=exc)
            return
        yield from self._extract_together(windows, end)

    def _extract_together(self, windows: Sequence[Window], end: datetime) -> Iterator[Outcome]:
        budget = BufferBudget(max(SHARED_BUFFER_BYTES, 2 * self.settings.max_message_bytes))
        runs: Dict[str, ProjectRun] = {}
        for window in windows:
            run = ProjectRun(self, window.target, window.start, end, budget)
            if not run.instants:
                yield Outcome(window, result=run.result)
                continue
            try:
                if self.stop():
                    raise Stopped("stopped before all projects were extracted")
                run.open()
            except (CloudError, Stopped) as exc:
                yield Outcome(window, error=exc)
                if isinstance(exc, Stopped):
                    return
                continue
            runs[window.target.project.id] = run
        if not runs:
            return
        since = min(run.start for run in runs.values())
        self.shared_listings += 1
        try:
            with self.cloud.skipping_bad_records(self._unattributed):
                for vm in self.cloud.list_vms(None, active_since=since):
                    if self.stop():
                        raise Stopped("stopped while extracting projects " + ", ".join(runs))
                    owner = runs.get(vm.project_id)
                    if owner is None:
                        self.other_vms += 1
                    elif owner.alive_in_window(vm):
                        owner.add_vm(vm)
        except (CloudError, QueueWriteError, Stopped) as exc:
            for run in runs.values():
                yield Outcome(run.window, error=exc)
            return
        finally:
            self.buffer_peak = max(self.buffer_peak, budget.peak)
            self.early_messages += budget.early_messages
        for run in runs.values():
            try:
                yield Outcome(run.window, result=run.close())
            except (CloudError, QueueWriteError, Stopped) as exc:
                yield Outcome(run.window, error=exc)

    def _unattributed(self, error: BadCloudData) -> None:
        """A VM of the shared listing the backend could not read: its project is unknown."""
        self.unattributed_errors.append(str(error))
        self.log.error("record skipped: bad cloud data (project unknown: the backend could not read the VM)",
                       error=str(error))



class ProjectRun:
    """One project's share of a run: its window, measurement instants, message batchers and IP tally."""

    def __init__(self, extractor: Extractor, target: Target, start: datetime, end: datetime,
                 budget: Optional[BufferBudget] = None) -> None:
        self.extractor = extractor
        self.window = Window(target, start)
        self.target = target
        self.start = start
        self.start_e, self.end_e = to_epoch(start), to_epoch(end)
        self.instants = measurement_instants(self.start_e, self.end_e)
        self.result = ProjectResult(measurements=len(self.instants))
        self.log = extractor.log.bind(project=target.project.id, vo=target.vo)
        settings = extractor.settings
        self.batchers = {kind: Batcher(FORMATS[kind], extractor.sinks[kind], settings.max_records_per_message,
                                       settings.max_message_bytes, budget) for kind in extractor.kinds}
        self.ips: Optional[IPTally] = None

    def bad(self, error: Exception) -> None:
        self.result.bad_vms += 1
        self.result.errors.append(str(error))
        self.log.error("record skipped: bad cloud data", error=str(error))

    def send(self, fragments: Iterable[Tuple[str, str]]) -> None:
        for kind, fragment in fragments:
            self.batchers[kind].add_fragment(fragment)

    def open(self) -> None:
        """What the project needs before its VMs: its floating IPs (CloudError if they cannot be listed)."""
        if "ip" in self.extractor.kinds:
            project = self.target.project
            try:
                self.ips = IPTally(self.instants, list(self.extractor.cloud.list_floating_ips(project.id)))
            except BadCloudData as exc:  # one unreadable floating IP must not stop the VM records
                self.bad(BadCloudData(f"IP records of project {project.id} not sent this run: {exc}"))

    def alive_in_window(self, vm: VM) -> bool:
        """What ``list_vms(project, active_since=start)`` returns: all but VMs that ended before the start
        (a listing of all projects starts at the earliest window)."""
        return not (vm.state is VMState.DELETED and vm.ended_at is not None and vm.ended_at < self.start)

    def add_vm(self, vm: VM) -> None:
        self.result.vms += 1
        try:
            life = Lifetime.of(vm)
            self.send(self.extractor.vm_fragments(self.target, life, self.instants, self.start_e, self.ips))
        except (BadCloudData, BadRecord) as exc:
            self.bad(exc)

    def close(self) -> ProjectResult:
        """IP and storage records, then the last messages; the result once everything is in the sinks."""
        extractor, project = self.extractor, self.target.project
        with extractor.cloud.skipping_bad_records(self.bad):
            if self.ips is not None:
                for record in self.ips.records(extractor, self.target):
                    self.send([("ip", FORMATS["ip"].fragment(record))])
            if "storage" in extractor.kinds:
                try:
                    for volume in extractor.cloud.list_volumes(project.id, active_since=self.start):
                        try:
                            self.send(extractor.storage_fragments(self.target, volume, self.instants, self.start_e))
                        except (BadCloudData, BadRecord) as exc:
                            self.bad(exc)
                except BadCloudData as exc:  # the backend could not read a volume: the rest waits for next run
                    self.bad(BadCloudData(f"storage records of project {project.id} incomplete this run: {exc}"))
            for batcher in self.batchers.values():
                batcher.flush()
        for kind, batcher in self.batchers.items():
            self.result.records[kind] = batcher.records
            self.result.messages += batcher.messages
        return self.result


class IPTally:
    """Public IPs per measurement instant and (user, IP version), each address counted once.

    Floating IPs are the project's allocations (counted from their creation, attached or
    not); public addresses of VMs (OpenNebula leases, provider networks) are counted while
    the VM exists.  A floating IP without an owning user is counted for the project.
    """

    def __init__(self, instants: List[int], floating: List[FloatingIP]) -> None:
        self.instants = instants
        self.floating = floating
        self.floating_addresses = {fip.address for fip in floating}
        self.vm_addresses: Dict[int, Dict[Tuple[Optional[str], int], Set[str]]] = {m: {} for m in instants}
        self.user_hints: Dict[str, str] = {}

    def add_vm(self, moment: int, vm: VM) -> None:
        for address in vm.addresses:
            if (address.public or address.floating) and address.address not in self.floating_addresses:
                self.vm_addresses[moment].setdefault((vm.user_id, address.version), set()).add(address.address)
        if vm.user_name and vm.user_id:
            self.user_hints.setdefault(vm.user_id, vm.user_name)

    def records(self, extractor: Extractor, target: Target) -> Iterator[IPRecord]:
        for moment in self.instants:
            groups: Dict[Tuple[Optional[str], int], Set[str]] = {}
            counted: Set[str] = set()
            for fip in self.floating:
                created = to_epoch(fip.created_at) if fip.created_at is not None else None
                if created is not None and created > moment:
                    continue
                groups.setdefault((fip.user_id, fip.version), set()).add(fip.address)
                counted.add(fip.address)
            for key, addresses in self.vm_addresses[moment].items():
                groups.setdefault(key, set()).update(addresses - counted)
            for (user_id, version), addresses in sorted(groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
                if not addresses:
                    continue
                local_user = user_id or target.project.id
                global_name = extractor.user_name(user_id, self.user_hints.get(user_id or "")) if user_id else None
                yield IPRecord(measurement_time=moment, site_name=extractor.site,
                               cloud_compute_service=extractor.service, cloud_type=extractor.cloud_type,
                               local_user=local_user, local_group=target.project.id,
                               global_user_name=global_name or local_user, fqan=target.fqan,
                               ip_version=version, ip_count=len(addresses))
