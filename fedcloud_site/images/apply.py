"""Executing an images :class:`~.plan.Plan`: the state database, the cloud, the downloads, the hooks.

Each subscription's actions run in order; when a cloud call of one of them fails, the rest of that
subscription's actions wait for the next run (nothing is retired on a cloud that answers badly) while the
other subscriptions go on.  Downloads run in parallel once every subscription's actions are applied; a
version's older versions are deprecated only once its image is active.  Every action re-reads its state row,
so an action whose premise no longer holds (e.g. a deprecation that failed before its deletion) does nothing.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set

from ..cloud.base import CloudBackend, CloudError, NotFound, NotSupported, TemplateSpec
from ..timeutil import iso_utc
from .cache import Cache, CacheFull
from .convert import ConvertError, Prepared, prepare
from .download import DownloadError, DownloadStopped, download
from .fetch import make_session
from .hooks import event_environment, run_hooks
from .imagelist import ImageEntry, ImageList
from .plan import (
    Action,
    Adopt,
    AwaitApproval,
    Claim,
    Delete,
    Download,
    EnsureTemplate,
    Fail,
    Plan,
    Problem,
    Reactivate,
    RecordOrphan,
    RemoveDuplicate,
    Retire,
    RetryLater,
    Supersede,
    Track,
    UpdateMetadata,
    Vanished,
    VersionKey,
)
from .register import Registrar, Target, architecture
from .settings import Settings, Subscription
from .state import PENDING, ImageRow, StateDB
from .summary import Summary

REMOVED_KEPT_DAYS = 90  # removed image versions stay in the status this long

#: actions whose cloud failure ends their subscription's actions for this run
_STOPS_ON_CLOUD_ERROR = (Reactivate, Adopt, UpdateMetadata, RemoveDuplicate)


@dataclass
class _Job:
    row_id: int
    subscription: Subscription
    action: Download


@dataclass
class _Outcome:
    job: _Job
    prepared: Optional[Prepared] = None
    error: Optional[str] = None
    partial_kept: bool = False
    stopped: bool = False
    resumed_from: int = 0


class Applier:
    """Applies a plan to the state database and the cloud, counting into ``summary``."""

    def __init__(self, config: Any, settings: Settings, db: StateDB, cloud: Callable[[], CloudBackend], log: Any,
                 summary: Summary, stop: threading.Event, now: Callable[[], datetime]) -> None:
        self.config = config
        self.settings = settings
        self.db = db
        self._cloud_factory = cloud
        self._registrar: Optional[Registrar] = None
        self.log = log
        self.summary = summary
        self.stop = stop
        self.now = now
        self.cache = Cache(settings.cache_dir, settings.cache_quota_bytes, settings.min_free_bytes)
        self.jobs: List[_Job] = []
        self._templates_refused = False

    @property
    def registrar(self) -> Registrar:
        if self._registrar is None:
            self._registrar = Registrar(self._cloud_factory(), self.log)
        return self._registrar

    @property
    def cloud_used(self) -> bool:
        return self._registrar is not None

    # ------------------------------------------------------------------------------- plan
    def apply_subscription(self, sub: Subscription, actions: List[Action]) -> None:
        """One subscription's actions, in order; downloads are queued for :meth:`run_downloads`."""
        for action in actions:
            if self.stop.is_set():
                return
            try:
                self._apply(sub, action)
            except CloudError as exc:
                if not isinstance(action, _STOPS_ON_CLOUD_ERROR):
                    raise
                self.cloud_failed(sub.name, exc)
                return

    def apply_closing(self, plan: Plan) -> None:
        for action in plan.closing:
            self._apply(None, action)

    def _apply(self, sub: Optional[Subscription], action: Action) -> None:
        now = iso_utc(self.now())
        if isinstance(action, Problem):
            self.summary.problem(action.subscription, action.reason)
            self.log.error("cloud operation failed" if action.cloud else "subscription cannot be synced",
                           subscription=action.subscription, error=action.reason)
            return
        row = self.db.image(*action.key)
        if isinstance(action, Track):
            assert sub is not None
            self._track(sub, action, row)
        elif isinstance(action, RecordOrphan):
            if row is None:
                self.db.add_image(*action.key, "registered", image_id=action.image_id, version=action.version,
                                  title=action.title, reason="found in the cloud, not in the state")
            elif row.image_id is None:
                self.db.update_image(row.id, state="registered", image_id=action.image_id, reason=None)
        elif row is None:
            self.log.warning("image version vanished from the state; action skipped", action=type(action).__name__,
                             subscription=action.key[0], identifier=action.key[1])
        elif isinstance(action, Download):
            assert sub is not None
            self.jobs.append(_Job(row.id, sub, action))
        elif isinstance(action, Retire):
            self.retire(row, action.reason)
        elif isinstance(action, Delete):
            self._delete(row)
        else:
            self._apply_to_row(sub, action, row, now)

    def _apply_to_row(self, sub: Optional[Subscription], action: Action, row: ImageRow, now: str) -> None:
        if isinstance(action, Supersede):
            self.db.update_image(row.id, state="removed", reason=f"superseded by version {action.version}",
                                 removed_at=now)
        elif isinstance(action, AwaitApproval):
            self.db.update_image(row.id, state="awaiting-approval",
                                 reason=f"policy approve: run 'fedcloud-site images approve {row.subscription} "
                                        f"{row.identifier}'")
            self.summary.awaiting_approval += 1
        elif isinstance(action, Reactivate):
            self.registrar.reactivate(action.image_id)
            self.db.update_image(row.id, state="registered", reason=None, deprecated_at=None)
        elif isinstance(action, Vanished):
            self.log.warning("registered image vanished from the cloud; registering it again",
                             subscription=row.subscription, identifier=row.identifier, image_id=action.image_id)
            self.db.update_image(row.id, state="listed", image_id=None, reason="image vanished from the cloud")
        elif isinstance(action, Claim):
            self.db.update_image(row.id, state="registered", image_id=action.image_id, reason=None,
                                 registered_at=row.registered_at or now)
        elif isinstance(action, Adopt):
            self.registrar.apply_metadata(action.image_id, action.changes, action.new_name)
            self.summary.adopted += 1
            self.log.info("image adopted instead of uploaded again", subscription=row.subscription,
                          identifier=row.identifier, image_id=action.image_id, registered_by=action.origin,
                          other_copies=list(action.other_copies))
            self.db.update_image(row.id, state="registered", image_id=action.image_id, reason=None,
                                 registered_at=row.registered_at or now)
        elif isinstance(action, UpdateMetadata):
            self.registrar.apply_metadata(action.image_id, action.changes, action.new_name)
            self.summary.updated += 1
        elif isinstance(action, RemoveDuplicate):
            why = self.registrar.delete(action.image_id)
            self.log.warning("duplicate image of one version", subscription=row.subscription,
                             identifier=row.identifier, image_id=action.image_id, kept=action.kept,
                             action="deleted" if why is None else why)
            if why is None:
                self.summary.removed += 1
        elif isinstance(action, EnsureTemplate):
            assert sub is not None
            self.ensure_template(sub.name, action.entry, action.image_id, action.properties)
        elif isinstance(action, RetryLater):
            self.summary.failed += 1
            self.summary.problem(f"{row.subscription}/{row.identifier}",
                                 f"{action.reason} (next attempt {action.next_attempt})")
        elif isinstance(action, Fail):
            self.fail(row, action.reason)
        else:  # pragma: no cover - every action type is handled above
            raise TypeError(f"unknown plan action {action!r}")

    def _track(self, sub: Subscription, action: Track, row: Optional[ImageRow]) -> None:
        entry = action.entry
        details: Dict[str, Any] = dict(version=entry.version, size=entry.size, title=entry.title,
                                       list_identifier=action.image_list.identifier,
                                       entry=json.dumps(dict(entry.raw), sort_keys=True))
        if row is None:
            if action.new_identifier:
                self.hook("SubscriptionImageNew", entry, sub, action.image_list)
            self.db.add_image(*action.key, "listed", **details)
            return
        self.db.update_image(row.id, **details)
        if row.state == "removed":
            self.db.update_image(row.id, state="listed", reason=None, removed_at=None, image_id=None)

    # ------------------------------------------------------------------------------- downloads
    def run_downloads(self) -> None:
        """Download, prepare and register the queued versions (bounded parallelism; stops on shutdown)."""
        jobs, self.jobs = self.jobs, []
        if not jobs:
            return
        in_flight = {str(job.action.dest) for job in jobs}
        evictable = [Path(r.cache_file) for r in self.db.images(states=("registered", "deprecated", "removed"))
                     if r.cache_file and r.cache_file not in in_flight]
        workers = self.settings.max_parallel_downloads
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="image-download") as pool:
            pending: Set[Future] = set()
            queue = list(jobs)
            while queue or pending:
                while queue and len(pending) < workers and not self.stop.is_set():
                    job = queue.pop(0)
                    entry = job.action.entry
                    self.log.info("downloading image", subscription=job.subscription.name,
                                  identifier=entry.identifier, version=entry.version, size=entry.size, url=entry.uri)
                    pending.add(pool.submit(self._fetch_and_prepare, job, evictable))
                if self.stop.is_set():
                    queue.clear()
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    self._finish(future.result())

    def _fetch_and_prepare(self, job: _Job, evictable: List[Path]) -> _Outcome:
        """Worker thread: space check, download, format preparation (no database or cloud access)."""
        entry, dest = job.action.entry, job.action.dest
        part = dest.with_name(dest.name + ".part")
        reserved: List[int] = []
        try:
            have = part.stat().st_size if part.exists() else (entry.size if dest.exists() else 0)
            reserved.append(self.cache.reserve(max(entry.size - have, 0), evictable))
            session = make_session(self.settings.capath, self.settings.ca_bundle, job.subscription.token,
                                   job.subscription.location)
            with session:
                result = download(entry.uri, dest, entry.size, entry.sha512, session,
                                  allow_local=job.subscription.location.startswith("file://"),
                                  http_timeout=float(self.settings.http_timeout),
                                  total_timeout=float(self.settings.download_timeout), stop=self.stop)
            self.cache.release(reserved.pop())

            def reserve(amount: int) -> None:
                reserved.append(self.cache.reserve(amount, evictable))

            prepared = prepare(result.path, self.settings.formats, self.settings.convert, self.settings.qemu_img,
                               reserve=reserve)
            return _Outcome(job, prepared=prepared, resumed_from=result.resumed_from)
        except DownloadStopped as exc:
            return _Outcome(job, error=str(exc), partial_kept=True, stopped=True)
        except DownloadError as exc:
            return _Outcome(job, error=f"download: {exc}", partial_kept=exc.partial_kept)
        except (CacheFull, ConvertError) as exc:
            return _Outcome(job, error=str(exc))
        except OSError as exc:
            return _Outcome(job, error=f"cache: {exc}")
        except Exception as exc:  # noqa: BLE001 - one image's surprise must not abort the others
            return _Outcome(job, error=f"unexpected {type(exc).__name__}: {exc}")
        finally:
            for amount in reserved:
                self.cache.release(amount)

    def _finish(self, outcome: _Outcome) -> None:
        """Main thread: record the download and register the image."""
        job = outcome.job
        row = self.db.image_by_id(job.row_id)
        entry = job.action.entry
        log = self.log.bind(subscription=job.subscription.name, identifier=entry.identifier, version=entry.version)
        if outcome.stopped:
            self.db.update_image(row.id, reason=f"interrupted ({outcome.error}); resumes next run",
                                 cache_file=str(job.action.dest))
            return
        if outcome.error is not None or outcome.prepared is None:
            self.fail(row, outcome.error or "unknown failure", resumable=outcome.partial_kept)
            return
        self.summary.downloaded += 1
        log.info("image downloaded and verified", sha512=entry.sha512[:16], resumed_from=outcome.resumed_from,
                 disk_format=outcome.prepared.disk_format, converted=outcome.prepared.converted)
        self.db.update_image(row.id, state="verified", reason=None, cache_file=str(job.action.dest))
        self._register(job, outcome.prepared, log)

    def _register(self, job: _Job, prepared: Prepared, log: Any) -> None:
        sub, action = job.subscription, job.action
        entry, image_list = action.entry, action.image_list
        row = self.db.image_by_id(job.row_id)
        self.hook("AvailablePrefix", entry, sub, image_list, filename=str(prepared.path))
        try:
            target = self._target(sub)
            with open(prepared.path, "rb") as data:
                image = self.registrar.register(action.name, prepared.disk_format, prepared.container_format,
                                                action.properties, target, data, min_ram_mb=entry.ram_minimum_mb)
        except (CloudError, OSError, RuntimeError) as exc:
            self.fail(row, f"registration: {type(exc).__name__}: {exc}")
            return
        finally:
            for extra in prepared.extra_files:
                extra.unlink(missing_ok=True)
        self.summary.registered += 1
        self.db.update_image(row.id, state="registered", image_id=image.id, reason=None, attempts=0,
                             next_attempt=None, registered_at=iso_utc(self.now()))
        log.info("image registered", image_id=image.id, name=image.name, owner=target.owner,
                 shared_with=list(target.share_with))
        self.hook("AvailablePostfix", entry, sub, image_list, filename=str(prepared.path), image_id=image.id)
        if action.template:
            self.ensure_template(sub.name, entry, image.id, action.properties)
        for key in action.replaces:
            self._retire_replaced(key, entry.version)
        if not self.settings.keep_cache:
            self.cache.remove(action.dest)

    def _retire_replaced(self, key: VersionKey, version: str) -> None:
        old = self.db.image(*key)
        if old is not None and old.state == "registered":
            self.retire(old, f"replaced by version {version}")

    # ------------------------------------------------------------------------------- retirement
    def retire(self, row: ImageRow, reason: str) -> None:
        """Deprecate a registered version (deactivated, marked), or drop a pending one."""
        now = iso_utc(self.now())
        if row.state == "registered" and row.image_id:
            entry = row.entry_data
            self.hook("ExpirePrefix", entry, None, None, subscription=row.subscription, image_id=row.image_id,
                      list_identifier=row.list_identifier or "")
            try:
                self.registrar.deprecate(row.image_id, now)
            except NotFound:
                self.db.update_image(row.id, state="removed", reason=f"{reason}; image already gone from the cloud",
                                     removed_at=now)
                self.summary.removed += 1
                return
            except PermissionError as exc:
                self.db.update_image(row.id, state="removed", reason=f"{reason}; {exc}", removed_at=now)
                return
            except CloudError as exc:
                self.cloud_failed(row.subscription, exc)
                return
            self.db.update_image(row.id, state="deprecated", reason=reason, deprecated_at=now)
            self.summary.deprecated += 1
            self.log.info("image deprecated", subscription=row.subscription, identifier=row.identifier,
                          version=row.version, image_id=row.image_id, reason=reason)
            self.hook("ExpirePostfix", entry, None, None, subscription=row.subscription, image_id=row.image_id,
                      list_identifier=row.list_identifier or "")
        elif row.state in PENDING:
            self.db.update_image(row.id, state="removed", reason=reason, removed_at=now)
            if row.cache_file:
                self.cache.remove(Path(row.cache_file))

    def _delete(self, row: ImageRow) -> None:
        """A version deprecated past the grace period: deleted unless VMs still use it."""
        if row.state != "deprecated":
            return  # its deprecation did not happen (cloud failure, failed download): no grace period began
        now = iso_utc(self.now())
        if not row.image_id:
            self.db.update_image(row.id, state="removed", removed_at=now)
            return
        try:
            why_not = self.registrar.delete(row.image_id)
        except PermissionError as exc:
            self.db.update_image(row.id, state="removed", reason=str(exc), removed_at=now)
            return
        except CloudError as exc:
            self.cloud_failed(row.subscription, exc)
            return
        if why_not:
            self.db.update_image(row.id, reason=f"{row.reason or 'retired'}; {why_not}")
            self.log.info("deprecated image kept", image_id=row.image_id, why=why_not)
            return
        self.db.update_image(row.id, state="removed", removed_at=now)
        self.summary.removed += 1
        self.log.info("image deleted", subscription=row.subscription, identifier=row.identifier,
                      version=row.version, image_id=row.image_id)
        if row.cache_file:
            self.cache.remove(Path(row.cache_file))

    # ------------------------------------------------------------------------------- VM templates
    def _template_spec(self, image: Any, entry: ImageEntry, properties: Dict[str, str]) -> TemplateSpec:
        defaults = self.settings.template
        vcpus = entry.core_minimum or defaults.vcpus
        return TemplateSpec(name=image.name, image_id=image.id, ram_mb=entry.ram_minimum_mb or defaults.memory,
                            vcpus=vcpus, cpu=round(vcpus * defaults.cpu, 2), arch=architecture(entry) or None,
                            owner=image.owner, visibility=image.visibility, properties=properties,
                            attributes=defaults.extra_attributes())

    def ensure_template(self, subscription: str, entry: ImageEntry, image_id: str,
                        properties: Dict[str, str]) -> None:
        """The VM template of a registered image (failures: next run)."""
        try:
            image = self.registrar.ours().get(image_id) or self.registrar.cloud.get_image(image_id)
            template = self.registrar.ensure_template(self._template_spec(image, entry, properties))
        except NotSupported as exc:
            self._templates_unsupported(subscription, exc)
            return
        except CloudError as exc:
            self.cloud_failed(subscription, exc)
            return
        if template is not None:
            self.log.info("VM template created", subscription=subscription, identifier=entry.identifier,
                          image_id=image_id, template_id=template.id, name=template.name, ram_mb=template.ram_mb,
                          vcpus=template.vcpus)

    def _templates_unsupported(self, subscription: str, exc: Exception) -> None:
        if self._templates_refused:
            return  # said once per run
        self._templates_refused = True
        self.summary.problem(subscription, f"templates: opennebula_template is set but {exc}")
        self.log.error("VM templates not supported by the cloud backend", subscription=subscription, error=str(exc))

    # ------------------------------------------------------------------------------- housekeeping
    def housekeeping(self) -> None:
        """After the plan: templates nobody needs, old removed rows, the cache over its quota."""
        self._clean_templates()
        self.db.prune_removed(iso_utc(self.now() - timedelta(days=REMOVED_KEPT_DAYS)))
        self._clean_cache()
        if self._registrar is not None:
            self.summary.templates_created = self._registrar.templates_created
            self.summary.templates_removed = self._registrar.templates_deleted

    def _clean_templates(self) -> None:
        """Delete our templates that no registered image of a subscription wanting templates needs."""
        if self._registrar is None:
            return  # the cloud was not used in this run: nothing can have changed
        wanting = {s.name for s in self.settings.subscriptions if s.enabled and self.settings.wants_template(s)}
        needed = {r.image_id for r in self.db.images(states=("registered",))
                  if r.image_id and r.subscription in wanting}
        try:
            for template in list(self.registrar.templates().values()):
                if not needed.intersection(template.image_ids):
                    self.registrar.delete_template(template)
        except NotSupported:
            return
        except CloudError as exc:
            self.cloud_failed("templates", exc)

    def _clean_cache(self) -> None:
        keep: Set[Path] = set()
        evictable: List[Path] = []
        for row in self.db.images():
            path = Path(row.cache_file) if row.cache_file else self.cache.path_for(row.subscription, row.identifier,
                                                                                     row.sha512)
            if row.state in PENDING:
                keep.add(path)
            elif row.state == "registered" and self.settings.keep_cache:
                keep.add(path)
                evictable.append(path)
        removed, freed = self.cache.clean(keep, evictable)
        if removed:
            self.log.info("cache cleaned", files=removed, bytes=freed)

    # ------------------------------------------------------------------------------- helpers
    def fail(self, row: ImageRow, reason: str, resumable: bool = False) -> None:
        attempts = row.attempts + 1
        delay = float(self.settings.retry_after) * min(2 ** (attempts - 1), 8)
        if resumable:
            reason += " (partial download kept; resumes next run)"
        self.db.update_image(row.id, state="failed", reason=reason, attempts=attempts,
                             next_attempt=iso_utc(self.now() + timedelta(seconds=delay)))
        self.summary.failed += 1
        self.summary.problem(f"{row.subscription}/{row.identifier}", reason)
        self.log.error("image failed; retried later", subscription=row.subscription, identifier=row.identifier,
                       version=row.version, reason=reason, attempts=attempts, retry_in_seconds=round(delay))

    def cloud_failed(self, subscription: str, exc: Exception) -> None:
        reason = f"cloud: {type(exc).__name__}: {exc}"
        self.summary.problem(subscription, reason)
        self.log.error("cloud operation failed", subscription=subscription, error=reason)

    def _vo_projects(self, sub: Subscription) -> List[str]:
        projects: List[str] = []
        if sub.vo is not None:
            vo = self.config.vos[sub.vo]
            projects.extend(vo.projects or ([vo.group] if vo.group else []))
        if sub.project:
            projects.insert(0, sub.project)
        return list(dict.fromkeys(projects))

    def _target(self, sub: Subscription) -> Target:
        projects = self.registrar.resolve_projects(self._vo_projects(sub))
        visibility = sub.sharing or ("shared" if projects else "private")
        share_with = projects[1:] if visibility == "shared" else []
        return Target(owner=projects[0] if projects else None, share_with=share_with, visibility=visibility,
                      datastore=str(sub.datastore_id) if sub.datastore_id is not None else None)

    def hook(self, event: str, entry: Any = None, sub: Optional[Subscription] = None,
             image_list: Optional[ImageList] = None, *, filename: str = "", image_id: str = "",
             subscription: str = "", list_identifier: str = "") -> None:
        if not self.settings.hooks:
            return
        raw = dict(entry.raw) if isinstance(entry, ImageEntry) else (entry or {})
        env = event_environment(event, raw, list_identifier=image_list.identifier if image_list else list_identifier,
                                filename=filename, vo=(sub.vo or "") if sub else "", image_id=image_id,
                                subscription=sub.name if sub else subscription)
        run_hooks(self.settings.hooks, event, env, self.log)
