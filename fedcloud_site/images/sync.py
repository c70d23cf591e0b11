"""One sync run: refresh every list, download and register new image versions, retire the rest.

Per subscription (a failure in one never stops the others):

1. Fetch the list (conditional GET) and verify it (:mod:`.trust`). If anything fails the *last good list*
   is kept: its pending images may still be downloaded and registered, but nothing already registered is
   retired or replaced because of that subscription; the failure is logged and shown in ``images status``.
2. For each wanted image (filter, per-image expiry, approval policy) make sure its current version
   (``dc:identifier`` + sha512) is in the cloud: adopt an existing copy we made earlier (crash recovery,
   duplicates removed), else download it (bounded parallelism), convert if needed and register it. Only
   once the new version is active are older versions of the same image retired.
3. Retire (deactivate, mark, delete after ``grace_period`` unless in use) images no longer in the list,
   expired ones, and all images of an expired list or of a removed/disabled subscription.

Registered images of subscriptions that want VM templates (``opennebula_template``) get theirs in step 2;
templates go with their image's deprecation, and ours that no registered image of such a subscription
needs any more are deleted at the end of the run. Then the cache is cleaned to its quota and, if images
changed, the trigger file is rewritten.
"""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, TypeVar

from ..atomic import atomic_write_bytes, atomic_write_text
from ..cloud.base import CloudBackend, CloudError, Image, NotFound, NotSupported, TemplateSpec
from ..timeutil import iso_utc, parse_time, utcnow
from .adopt import foreign_copies
from .cache import Cache, CacheFull
from .convert import ConvertError, Prepared, prepare
from .download import DownloadError, DownloadStopped, download
from .fetch import FetchError, fetch_list, make_session
from .hooks import event_environment, run_hooks
from .imagelist import ImageEntry, ImageList, ImageListError, parse_image_list
from .register import Registrar, Target, architecture, image_properties, is_ours, prop
from .settings import Settings, Subscription
from .state import IN_CLOUD, ImageRow, StateDB
from .trust import ListRejected, verify_list

PENDING = ("listed", "awaiting-approval", "fetched", "verified", "failed")
REMOVED_KEPT_DAYS = 90  # removed image versions stay in the status this long
GONE_SUBSCRIPTION = "subscription removed from the configuration or disabled"

_T = TypeVar("_T")


def _list_expired(image_list: ImageList) -> str:
    return f"list {image_list.identifier} expired at {iso_utc(image_list.expires)}"


@dataclass
class Summary:
    lists_ok: int = 0
    lists_unchanged: int = 0
    lists_failed: int = 0
    downloaded: int = 0
    registered: int = 0
    updated: int = 0
    deprecated: int = 0
    removed: int = 0
    failed: int = 0
    awaiting_approval: int = 0
    adopted: int = 0  # images another tool registered, taken over (adopt_images_from)
    templates_created: int = 0
    templates_removed: int = 0
    problems: List[str] = field(default_factory=list)
    would: Dict[str, int] = field(default_factory=dict)  # dry run: what a real run would do

    def as_dict(self) -> Dict[str, int]:
        counts = {k: v for k, v in self.__dict__.items() if k not in ("problems", "would")}
        counts.update({f"would_{k}": v for k, v in self.would.items()})
        return counts

    @property
    def cloud_changed(self) -> bool:
        return bool(self.registered or self.updated or self.deprecated or self.removed or self.adopted)


@dataclass
class _Job:
    row_id: int
    subscription: Subscription
    image_list: ImageList
    entry: ImageEntry
    dest: Path


@dataclass
class _Outcome:
    job: _Job
    prepared: Optional[Prepared] = None
    error: Optional[str] = None
    partial_kept: bool = False
    stopped: bool = False
    resumed_from: int = 0


@dataclass
class _ListState:
    subscription: Subscription
    image_list: Optional[ImageList]
    fresh: bool  # verified in this run (so removals from it count)


def state_db_path(settings: Settings) -> Path:
    return settings.state_path("images") / "images.sqlite"


class Sync:
    """A sync run over all subscriptions of the ``images`` settings."""

    def __init__(self, config: Any, settings: Settings, cloud: Callable[[], CloudBackend], log: Any,
                 stop: Optional[threading.Event] = None, dry_run: bool = False,
                 now: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.settings = settings
        self._cloud_factory = cloud
        self._registrar: Optional[Registrar] = None
        self.log = log
        self.stop = stop or threading.Event()
        self.dry_run = dry_run
        self.now = now
        self.state_dir = settings.state_path("images")
        self.lists_dir = self.state_dir / "lists"
        self.cache = Cache(settings.cache_dir, settings.cache_quota_bytes, settings.min_free_bytes)
        self.summary = Summary()
        self.db: StateDB
        self._templates_refused = False
        self._reactivated: Set[int] = set()  # dry run: deprecated versions the lists want again
        self._cloud_images: Optional[List[Image]] = None  # all images, listed once a run for adoption

    @property
    def registrar(self) -> Registrar:
        if self._registrar is None:
            self._registrar = Registrar(self._cloud_factory(), self.log)
        return self._registrar

    # ------------------------------------------------------------------------------- run
    def run(self) -> Summary:
        if self.dry_run:
            return self._preview()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with StateDB(state_db_path(self.settings)) as self.db:
            self._hook("ProcessPrefix")
            enabled = [s for s in self.settings.subscriptions if s.enabled]
            states = [state for state in (self._isolated(sub, self._refresh, sub) for sub in enabled
                                          if not self.stop.is_set()) if state is not None]
            jobs: List[_Job] = []
            for state in states:
                if self.stop.is_set():
                    break
                jobs.extend(self._isolated(state.subscription, self._plan_subscription, state) or [])
            self._run_downloads(jobs)
            self._retire_gone_subscriptions({s.name for s in enabled})
            self._delete_expired_deprecations()
            self._clean_templates()
            self.db.prune_removed(iso_utc(self.now() - timedelta(days=REMOVED_KEPT_DAYS)))
            self._clean_cache()
            self._hook("ProcessPostfix")
        if self._registrar is not None:
            self.summary.templates_created = self._registrar.templates_created
            self.summary.templates_removed = self._registrar.templates_deleted
        if self.summary.cloud_changed:
            self._touch_trigger()
        return self.summary

    def _isolated(self, sub: Subscription, step: Callable[[Any], _T], arg: Any) -> Optional[_T]:
        """``step(arg)`` for one subscription; any surprise is that subscription's named failure (logged with
        its traceback) and the run goes on with the others, retirement and expiry."""
        try:
            return step(arg)
        except Exception as exc:  # noqa: BLE001 - one subscription's surprise must not abort the others
            reason = f"internal: {type(exc).__name__}: {exc}"
            self.summary.lists_failed += 1
            self.summary.problems.append(f"{sub.name}: {reason}")
            self.log.exception("subscription failed; the other subscriptions go on", subscription=sub.name,
                               reason=reason)
            try:
                self.db.save_subscription(sub.name, url=sub.location, state="failed", reason=reason,
                                          last_checked=iso_utc(self.now()))
            except Exception as db_exc:  # noqa: BLE001 - the failure is already counted and logged
                self.log.error("cannot record the subscription's failure", subscription=sub.name, error=str(db_exc))
            return None

    # ------------------------------------------------------------------------------- lists
    def _list_files(self, name: str) -> Tuple[Path, Path]:
        return self.lists_dir / f"{name}.smime", self.lists_dir / f"{name}.json"

    def _refresh(self, sub: Subscription) -> _ListState:
        row = self.db.subscription(sub.name)
        signed_file, content_file = self._list_files(sub.name)
        have_good = row is not None and row.state != "never" and content_file.exists() and signed_file.exists()
        now = self.now()
        try:
            session = make_session(self.settings.capath, self.settings.ca_bundle, sub.token, sub.location)
            with session:
                response = fetch_list(session, sub.location, self.settings.max_list_bytes,
                                      float(self.settings.list_timeout), etag=row.etag if have_good and row else None,
                                      last_modified=row.last_modified if have_good and row else None)
            unchanged = response.not_modified and have_good
            signed = signed_file.read_bytes() if unchanged else response.body
            if response.not_modified and not have_good:
                raise FetchError("server answered 304 Not Modified but no accepted list is stored")
            verified = verify_list(signed, sub, self.settings.capath, now, self.settings.allow_stale_crls,
                                   accepted_identifier=row.list_identifier if row else None,
                                   accepted_version=row.list_version if row else None)
        except (FetchError, ListRejected) as exc:
            self.summary.lists_failed += 1
            stage = exc.stage if isinstance(exc, ListRejected) else "fetch"
            reason = str(exc) if isinstance(exc, ListRejected) else f"fetch: {exc}"
            self.summary.problems.append(f"{sub.name}: {reason}")
            self.log.error("image list not accepted; keeping the last good list and all registered images",
                           subscription=sub.name, url=sub.location, stage=stage, reason=reason)
            self.db.save_subscription(sub.name, url=sub.location, state="failed", reason=reason,
                                      last_checked=iso_utc(now))
            return _ListState(sub, self._last_good(sub) if have_good else None, fresh=False)
        image_list = verified.image_list
        warnings = "; ".join(str(bad) for bad in image_list.invalid)
        for bad in image_list.invalid:
            self.log.error("invalid image entry skipped (its registered image is kept)", subscription=sub.name,
                           entry=str(bad))
        if not unchanged:
            try:
                atomic_write_bytes(signed_file, signed)
                atomic_write_bytes(content_file, verified.content)
            except OSError as exc:
                reason = f"state: cannot store the accepted list in {self.lists_dir}: {exc.strerror or exc}"
                self.summary.lists_failed += 1
                self.summary.problems.append(f"{sub.name}: {reason}")
                self.log.error("image list verified but not stored; keeping the last good list",
                               subscription=sub.name, reason=reason)
                self.db.save_subscription(sub.name, url=sub.location, state="failed", reason=reason,
                                          last_checked=iso_utc(now))
                return _ListState(sub, self._last_good(sub) if have_good else None, fresh=False)
        self.db.save_subscription(
            sub.name, url=sub.location, state="ok", reason=(f"invalid image entries: {warnings}" if warnings else None),
            etag=response.etag, last_modified=response.last_modified, list_identifier=image_list.identifier,
            list_version=image_list.version, list_expires=iso_utc(image_list.expires), list_file=str(signed_file),
            signer_dn=verified.signer_dn, last_checked=iso_utc(now), last_success=iso_utc(now))
        if unchanged:
            self.summary.lists_unchanged += 1
        else:
            self.summary.lists_ok += 1
        self.log.info("image list accepted", subscription=sub.name, identifier=image_list.identifier,
                      version=image_list.version, images=len(image_list.images), unchanged=unchanged,
                      invalid_entries=len(image_list.invalid), expires=iso_utc(image_list.expires))
        return _ListState(sub, image_list, fresh=True)

    def _last_good(self, sub: Subscription) -> Optional[ImageList]:
        try:
            return parse_image_list(self._list_files(sub.name)[1].read_bytes())
        except (OSError, ImageListError) as exc:
            self.log.warning("last good list unreadable", subscription=sub.name, error=str(exc))
            return None

    # ------------------------------------------------------------------------------- planning
    def _wanted(self, sub: Subscription, image_list: ImageList, now: datetime) -> Dict[str, ImageEntry]:
        flt = sub.filter
        wanted = {}
        for entry in image_list.images:
            if flt.identifiers and entry.identifier.lower() not in {i.lower() for i in flt.identifiers}:
                continue
            if flt.titles and not any(re.search(p, entry.title, re.IGNORECASE) for p in flt.titles):
                continue
            if flt.os and not ({entry.os.lower(), entry.osname.lower()} & {o.lower() for o in flt.os}):
                continue
            if entry.expired(now):
                continue
            wanted[entry.identifier] = entry
        return wanted

    def _plan_subscription(self, state: _ListState) -> List[_Job]:
        sub, image_list = state.subscription, state.image_list
        if image_list is None:
            return []
        now = self.now()
        if image_list.expired(now):
            self.summary.problems.append(f"{sub.name}: list expired at {iso_utc(image_list.expires)}")
            for row in self.db.images(sub.name):
                self._retire(row, _list_expired(image_list))
            return []
        try:
            self._adopt_orphans(sub.name)
        except CloudError as exc:
            self._cloud_failed(sub.name, exc)
            return []
        wanted = self._wanted(sub, image_list, now)
        jobs: List[_Job] = []
        for entry in wanted.values():
            try:
                job = self._plan_image(sub, image_list, entry, now)
            except CloudError as exc:
                self._cloud_failed(sub.name, exc)
                return jobs
            if job is not None:
                jobs.append(job)
        if state.fresh:
            for row, reason in self._unwanted(image_list, wanted, self.db.images(sub.name), now):
                self._retire(row, reason)
        return jobs

    @staticmethod
    def _unwanted(image_list: ImageList, wanted: Dict[str, ImageEntry], rows: List[ImageRow],
                  now: datetime) -> List[Tuple[ImageRow, str]]:
        """Image versions of a freshly accepted list's subscription that it no longer wants, and why.
        Entries the list has but could not parse are not retired (their registered image is kept)."""
        protected = {bad.identifier for bad in image_list.invalid if bad.identifier}
        expired = {e.identifier: e.expires for e in image_list.images if e.expired(now) and e.expires}
        listed = {e.identifier for e in image_list.images}
        unwanted = []
        for row in rows:
            if row.identifier in wanted or row.identifier in protected or row.state == "removed":
                continue
            if row.identifier in expired:
                unwanted.append((row, f"image expired at {iso_utc(expired[row.identifier])}"))
            elif row.identifier in listed:
                unwanted.append((row, "no longer selected by the subscription's filter"))
            else:
                unwanted.append((row, f"no longer in list {image_list.identifier} version {image_list.version}"))
        return unwanted

    def _plan_image(self, sub: Subscription, image_list: ImageList, entry: ImageEntry,
                    now: datetime) -> Optional[_Job]:
        details = dict(version=entry.version, size=entry.size, title=entry.title, list_identifier=image_list.identifier,
                       entry=json.dumps(dict(entry.raw), sort_keys=True))
        row = self.db.image(sub.name, entry.identifier, entry.sha512)
        if row is None:
            if entry.identifier not in self.db.known_identifiers(sub.name):
                self._hook("SubscriptionImageNew", entry, sub, image_list)
            row = self.db.add_image(sub.name, entry.identifier, entry.sha512, "listed", **details)
        else:
            self.db.update_image(row.id, **details)
            if row.state == "removed":
                self.db.update_image(row.id, state="listed", reason=None, removed_at=None, image_id=None)
            row = self.db.image_by_id(row.id)
        for old in self.db.images(sub.name, states=("listed", "failed", "verified", "fetched", "awaiting-approval"),
                                  identifier=entry.identifier):
            if old.sha512 != entry.sha512:
                self.db.update_image(old.id, state="removed", reason=f"superseded by version {entry.version}",
                                     removed_at=iso_utc(now))
        if sub.policy == "approve" and not self.db.approved(sub.name, entry.identifier):
            if row.state not in IN_CLOUD:
                self.db.update_image(row.id, state="awaiting-approval",
                                     reason=f"policy approve: run 'fedcloud-site images approve {sub.name} "
                                            f"{entry.identifier}'")
                self.summary.awaiting_approval += 1
                return None
        registrar = self.registrar
        if row.state in IN_CLOUD and row.image_id:
            image = registrar.ours().get(row.image_id)
            if image is not None:
                if row.state == "deprecated":
                    registrar.reactivate(image.id)
                    self.db.update_image(row.id, state="registered", reason=None, deprecated_at=None)
                    image = registrar.cloud.get_image(image.id)
                if registrar.update_metadata(image, self._name(sub, entry), self._properties(sub, image_list, entry)):
                    self.summary.updated += 1
                self._remove_duplicates(sub.name, entry, keep=image.id)
                self._ensure_template(sub, image_list, entry, image.id)
                self._retire_older(sub.name, entry, row.id)
                return None
            self.log.warning("registered image vanished from the cloud; registering it again",
                             subscription=sub.name, identifier=entry.identifier, image_id=row.image_id)
            self.db.update_image(row.id, state="listed", image_id=None, reason="image vanished from the cloud")
        found = registrar.find(sub.name, entry.identifier, entry.sha512) or self._adopt(sub, image_list, entry)
        if found:
            self.db.update_image(row.id, state="registered", image_id=found[0].id, reason=None,
                                 registered_at=row.registered_at or iso_utc(now))
            self._remove_duplicates(sub.name, entry, keep=found[0].id)
            if registrar.update_metadata(found[0], self._name(sub, entry), self._properties(sub, image_list, entry)):
                self.summary.updated += 1
            self._ensure_template(sub, image_list, entry, found[0].id)
            self._retire_older(sub.name, entry, row.id)
            return None
        if row.state == "failed" and not row.due(now):
            self.summary.failed += 1
            self.summary.problems.append(f"{sub.name}/{entry.identifier}: {row.reason} (next attempt "
                                         f"{row.next_attempt})")
            return None
        if entry.size > self.settings.max_image_bytes:
            self._fail(row, f"hv:size {entry.size} exceeds max_image_size ({self.settings.max_image_bytes})")
            return None
        return _Job(row.id, sub, image_list, entry, self.cache.path_for(sub.name, entry.identifier, entry.sha512))

    def _adopt(self, sub: Subscription, image_list: ImageList, entry: ImageEntry) -> List[Image]:
        """The copy another tool registered of this version, made ours (``adopt_images_from``); [] if none."""
        copies = self._foreign_copies(entry)
        if not copies:
            return []
        image, origin = copies[0]
        self.registrar.update_metadata(image, self._name(sub, entry), self._properties(sub, image_list, entry))
        adopted = self.registrar.ours().get(image.id) or image
        self.summary.adopted += 1
        self.log.info("image adopted instead of uploaded again", subscription=sub.name, identifier=entry.identifier,
                      image_id=image.id, registered_by=origin, other_copies=[i.id for i, _ in copies[1:]])
        return [adopted]

    def _foreign_copies(self, entry: ImageEntry) -> List[Tuple[Image, str]]:
        if not self.settings.adopt_images_from:
            return []
        if self._cloud_images is None:
            self._cloud_images = list(self.registrar.cloud.list_images())
        return list(foreign_copies(self._cloud_images, entry, self.settings.adopt_images_from))

    def _remove_duplicates(self, subscription: str, entry: ImageEntry, keep: str) -> None:
        """Other copies of the same version (e.g. an upload whose bookkeeping was lost): deleted."""
        for duplicate in self.registrar.find(subscription, entry.identifier, entry.sha512):
            if duplicate.id == keep:
                continue
            why = self.registrar.delete(duplicate.id)
            self.log.warning("duplicate image of one version", subscription=subscription,
                             identifier=entry.identifier, image_id=duplicate.id, kept=keep,
                             action="deleted" if why is None else why)
            if why is None:
                self.summary.removed += 1

    def _adopt_orphans(self, subscription: str) -> None:
        """Our cloud images of this subscription that the state does not know (lost state, crash between
        upload and bookkeeping): recorded so that the normal rules keep, dedupe or retire them."""
        known = {r.image_id for r in self.db.images(subscription) if r.image_id}
        for image in self.registrar.ours().values():
            if image.id in known or not is_ours(image, subscription):
                continue
            identifier = prop(image, "appdb_id") or ""
            sha512 = (prop(image, "image_hash") or "").removeprefix("sha512:")
            if not identifier or not sha512:
                continue
            row = self.db.image(subscription, identifier, sha512)
            if row is None:
                self.db.add_image(subscription, identifier, sha512, "registered", image_id=image.id,
                                  version=prop(image, "vmcatcher_event_hv_version") or "",
                                  title=prop(image, "vmcatcher_event_dc_title") or image.name,
                                  reason="found in the cloud, not in the state")
            elif row.image_id is None:
                self.db.update_image(row.id, state="registered", image_id=image.id, reason=None)

    # ------------------------------------------------------------------------------- downloads
    def _run_downloads(self, jobs: List[_Job]) -> None:
        if not jobs:
            return
        in_flight = {str(job.dest) for job in jobs}
        evictable = [Path(r.cache_file) for r in self.db.images(states=("registered", "deprecated", "removed"))
                     if r.cache_file and r.cache_file not in in_flight]
        with ThreadPoolExecutor(max_workers=self.settings.max_parallel_downloads,
                                thread_name_prefix="image-download") as pool:
            pending: Set[Future] = set()
            queue = list(jobs)
            while queue or pending:
                while queue and len(pending) < self.settings.max_parallel_downloads and not self.stop.is_set():
                    job = queue.pop(0)
                    self.log.info("downloading image", subscription=job.subscription.name,
                                  identifier=job.entry.identifier, version=job.entry.version, size=job.entry.size,
                                  url=job.entry.uri)
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
        entry = job.entry
        part = job.dest.with_name(job.dest.name + ".part")
        reserved: List[int] = []
        try:
            have = part.stat().st_size if part.exists() else (entry.size if job.dest.exists() else 0)
            reserved.append(self.cache.reserve(max(entry.size - have, 0), evictable))
            session = make_session(self.settings.capath, self.settings.ca_bundle, job.subscription.token,
                                   job.subscription.location)
            with session:
                result = download(entry.uri, job.dest, entry.size, entry.sha512, session,
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
        log = self.log.bind(subscription=job.subscription.name, identifier=job.entry.identifier,
                            version=job.entry.version)
        if outcome.stopped:
            self.db.update_image(row.id, reason=f"interrupted ({outcome.error}); resumes next run",
                                 cache_file=str(job.dest))
            return
        if outcome.error is not None or outcome.prepared is None:
            self._fail(row, outcome.error or "unknown failure", resumable=outcome.partial_kept)
            return
        self.summary.downloaded += 1
        log.info("image downloaded and verified", sha512=job.entry.sha512[:16], resumed_from=outcome.resumed_from,
                 disk_format=outcome.prepared.disk_format, converted=outcome.prepared.converted)
        self.db.update_image(row.id, state="verified", reason=None, cache_file=str(job.dest))
        self._register(job, outcome.prepared, log)

    def _register(self, job: _Job, prepared: Prepared, log: Any) -> None:
        sub, entry, image_list = job.subscription, job.entry, job.image_list
        row = self.db.image_by_id(job.row_id)
        self._hook("AvailablePrefix", entry, sub, image_list, filename=str(prepared.path))
        try:
            target = self._target(sub)
            with open(prepared.path, "rb") as data:
                image = self.registrar.register(
                    self._name(sub, entry), prepared.disk_format, prepared.container_format,
                    self._properties(sub, image_list, entry), target, data, min_ram_mb=entry.ram_minimum_mb)
        except (CloudError, OSError, RuntimeError) as exc:
            self._fail(row, f"registration: {type(exc).__name__}: {exc}")
            return
        finally:
            for extra in prepared.extra_files:
                extra.unlink(missing_ok=True)
        self.summary.registered += 1
        self.db.update_image(row.id, state="registered", image_id=image.id, reason=None, attempts=0,
                             next_attempt=None, registered_at=iso_utc(self.now()))
        log.info("image registered", image_id=image.id, name=image.name, owner=target.owner,
                 shared_with=list(target.share_with))
        self._hook("AvailablePostfix", entry, sub, image_list, filename=str(prepared.path), image_id=image.id)
        self._ensure_template(sub, image_list, entry, image.id)
        self._retire_older(sub.name, entry, row.id)
        if not self.settings.keep_cache:
            self.cache.remove(job.dest)

    # ------------------------------------------------------------------------------- retirement
    def _retire_older(self, subscription: str, entry: ImageEntry, current_row: int) -> None:
        for old in self.db.images(subscription, states=IN_CLOUD, identifier=entry.identifier):
            if old.id != current_row and old.state == "registered":
                self._retire(old, f"replaced by version {entry.version}")

    def _retire(self, row: ImageRow, reason: str) -> None:
        now = iso_utc(self.now())
        if row.state == "registered" and row.image_id:
            entry = row.entry_data
            self._hook("ExpirePrefix", entry, None, None, subscription=row.subscription, image_id=row.image_id,
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
                self._cloud_failed(row.subscription, exc)
                return
            self.db.update_image(row.id, state="deprecated", reason=reason, deprecated_at=now)
            self.summary.deprecated += 1
            self.log.info("image deprecated", subscription=row.subscription, identifier=row.identifier,
                          version=row.version, image_id=row.image_id, reason=reason)
            self._hook("ExpirePostfix", entry, None, None, subscription=row.subscription, image_id=row.image_id,
                       list_identifier=row.list_identifier or "")
        elif row.state in PENDING:
            self.db.update_image(row.id, state="removed", reason=reason, removed_at=now)
            if row.cache_file:
                self.cache.remove(Path(row.cache_file))

    def _retire_gone_subscriptions(self, active: Set[str]) -> None:
        for name in self.db.subscriptions_with_images():
            if name in active:
                continue
            rows = [r for r in self.db.images(name) if r.state != "removed"]
            for row in rows:
                self._retire(row, GONE_SUBSCRIPTION)

    def _delete_expired_deprecations(self) -> None:
        grace = timedelta(seconds=float(self.settings.grace_period))
        now = self.now()
        for row in self.db.images(states=("deprecated",)):
            if row.deprecated_at and parse_time(row.deprecated_at) + grace > now:
                continue
            if not row.image_id:
                self.db.update_image(row.id, state="removed", removed_at=iso_utc(now))
                continue
            try:
                why_not = self.registrar.delete(row.image_id)
            except PermissionError as exc:
                self.db.update_image(row.id, state="removed", reason=str(exc), removed_at=iso_utc(now))
                continue
            except CloudError as exc:
                self._cloud_failed(row.subscription, exc)
                continue
            if why_not:
                self.db.update_image(row.id, reason=f"{row.reason or 'retired'}; {why_not}")
                self.log.info("deprecated image kept", image_id=row.image_id, why=why_not)
                continue
            self.db.update_image(row.id, state="removed", removed_at=iso_utc(now))
            self.summary.removed += 1
            self.log.info("image deleted", subscription=row.subscription, identifier=row.identifier,
                          version=row.version, image_id=row.image_id)
            if row.cache_file:
                self.cache.remove(Path(row.cache_file))

    # ------------------------------------------------------------------------------- VM templates
    def _template_spec(self, image: Image, entry: ImageEntry, properties: Dict[str, str]) -> TemplateSpec:
        defaults = self.settings.template
        vcpus = entry.core_minimum or defaults.vcpus
        return TemplateSpec(name=image.name, image_id=image.id, ram_mb=entry.ram_minimum_mb or defaults.memory,
                            vcpus=vcpus, cpu=round(vcpus * defaults.cpu, 2), arch=architecture(entry) or None,
                            owner=image.owner, visibility=image.visibility, properties=properties,
                            attributes=defaults.extra_attributes())

    def _ensure_template(self, sub: Subscription, image_list: ImageList, entry: ImageEntry, image_id: str) -> None:
        """The VM template of a registered image, when the subscription wants one (failures: next run)."""
        if not self.settings.wants_template(sub):
            return
        try:
            image = self.registrar.ours().get(image_id) or self.registrar.cloud.get_image(image_id)
            spec = self._template_spec(image, entry, self._properties(sub, image_list, entry))
            template = self.registrar.ensure_template(spec)
        except NotSupported as exc:
            self._templates_unsupported(sub.name, exc)
            return
        except CloudError as exc:
            self._cloud_failed(sub.name, exc)
            return
        if template is not None:
            self.log.info("VM template created", subscription=sub.name, identifier=entry.identifier,
                          image_id=image_id, template_id=template.id, name=template.name, ram_mb=template.ram_mb,
                          vcpus=template.vcpus)

    def _templates_unsupported(self, subscription: str, exc: Exception) -> None:
        if self._templates_refused:
            return  # said once per run
        self._templates_refused = True
        self.summary.problems.append(f"{subscription}: templates: opennebula_template is set but {exc}")
        self.log.error("VM templates not supported by the cloud backend", subscription=subscription, error=str(exc))

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
            self._cloud_failed("templates", exc)

    # ------------------------------------------------------------------------------- cache
    def _clean_cache(self) -> None:
        keep: Set[Path] = set()
        evictable: List[Path] = []
        for row in self.db.images():
            if not row.cache_file:
                path = self.cache.path_for(row.subscription, row.identifier, row.sha512)
            else:
                path = Path(row.cache_file)
            if row.state in PENDING:
                keep.add(path)
            elif row.state == "registered" and self.settings.keep_cache:
                keep.add(path)
                evictable.append(path)
        removed, freed = self.cache.clean(keep, evictable)
        if removed:
            self.log.info("cache cleaned", files=removed, bytes=freed)

    # ------------------------------------------------------------------------------- helpers
    def _fail(self, row: ImageRow, reason: str, resumable: bool = False) -> None:
        attempts = row.attempts + 1
        delay = float(self.settings.retry_after) * min(2 ** (attempts - 1), 8)
        if resumable:
            reason += " (partial download kept; resumes next run)"
        self.db.update_image(row.id, state="failed", reason=reason, attempts=attempts,
                             next_attempt=iso_utc(self.now() + timedelta(seconds=delay)))
        self.summary.failed += 1
        self.summary.problems.append(f"{row.subscription}/{row.identifier}: {reason}")
        self.log.error("image failed; retried later", subscription=row.subscription, identifier=row.identifier,
                       version=row.version, reason=reason, attempts=attempts, retry_in_seconds=round(delay))

    def _cloud_failed(self, subscription: str, exc: Exception) -> None:
        reason = f"cloud: {type(exc).__name__}: {exc}"
        self.summary.problems.append(f"{subscription}: {reason}")
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

    def _name(self, sub: Subscription, entry: ImageEntry) -> str:
        """Prefixes + title, as the cloud takes it; where names must be unique (OpenNebula) tagged with the
        subscription, version and checksum, so that two versions (or two VOs' copies) can coexist."""
        return self.registrar.cloud.image_name(f"{self.settings.prefix}{sub.prefix}{entry.title}",
                                               f"{sub.name} {entry.version} {entry.sha512[:8]}")

    def _properties(self, sub: Subscription, image_list: ImageList, entry: ImageEntry) -> Dict[str, str]:
        return image_properties(sub.name, image_list, entry, sub.vo)

    def _hook(self, event: str, entry: Any = None, sub: Optional[Subscription] = None,
              image_list: Optional[ImageList] = None, *, filename: str = "", image_id: str = "",
              subscription: str = "", list_identifier: str = "") -> None:
        if not self.settings.hooks:
            return
        raw = dict(entry.raw) if isinstance(entry, ImageEntry) else (entry or {})
        env = event_environment(event, raw, list_identifier=image_list.identifier if image_list else list_identifier,
                                filename=filename, vo=(sub.vo or "") if sub else "", image_id=image_id,
                                subscription=sub.name if sub else subscription)
        run_hooks(self.settings.hooks, event, env, self.log)

    def _touch_trigger(self) -> None:
        path = self.settings.trigger_path()
        data = dict(self.summary.as_dict(), changed_at=iso_utc(self.now()))
        atomic_write_text(path, json.dumps(data, sort_keys=True) + "\n", mode=0o644)

    # ------------------------------------------------------------------------------- dry run
    def _preview(self) -> Summary:
        """Fetch and verify the lists and say what a real run would do (register, replace, deprecate,
        delete), by the rules of the real run; nothing is written, downloaded or changed in the cloud."""
        db_path = state_db_path(self.settings)
        rows: List[ImageRow] = []
        lists: Dict[str, Any] = {}
        if db_path.exists():
            with StateDB(db_path) as db:
                rows = [r for r in db.images() if r.state != "removed"]
                lists = {s.name: s for s in db.subscriptions()}
        now = self.now()
        enabled = [s for s in self.settings.subscriptions if s.enabled]
        for sub in enabled:
            mine = [r for r in rows if r.subscription == sub.name]
            listed = lists.get(sub.name)
            try:
                with make_session(self.settings.capath, self.settings.ca_bundle, sub.token, sub.location) as session:
                    response = fetch_list(session, sub.location, self.settings.max_list_bytes,
                                          float(self.settings.list_timeout))
                verified = verify_list(response.body, sub, self.settings.capath, now,
                                       self.settings.allow_stale_crls,
                                       accepted_identifier=listed.list_identifier if listed else None,
                                       accepted_version=listed.list_version if listed else None)
            except (FetchError, ListRejected) as exc:
                self.summary.lists_failed += 1
                self.log.error("dry run: list would be rejected", subscription=sub.name, reason=str(exc))
                last = self._last_good(sub) if self._list_files(sub.name)[1].exists() else None
                if last is not None and last.expired(now):
                    for row in mine:
                        self._preview_retire(row, _list_expired(last))
                continue
            self.summary.lists_ok += 1
            wanted = self._wanted(sub, verified.image_list, now)
            for entry in wanted.values():
                self._preview_image(sub, entry, [r for r in mine if r.identifier == entry.identifier])
            for row, reason in self._unwanted(verified.image_list, wanted, mine, now):
                self._preview_retire(row, reason)
        configured = {s.name for s in enabled}
        for row in rows:
            if row.subscription not in configured:
                self._preview_retire(row, GONE_SUBSCRIPTION)
        grace = timedelta(seconds=float(self.settings.grace_period))
        for row in rows:
            if row.id in self._reactivated:
                continue
            if row.state == "deprecated" and (not row.deprecated_at or parse_time(row.deprecated_at) + grace <= now):
                self._would("delete", "dry run: would delete (unless VMs still use it)", row, reason=row.reason)
        return self.summary

    def _preview_image(self, sub: Subscription, entry: ImageEntry, rows: List[ImageRow]) -> None:
        current = next((r for r in rows if r.sha512 == entry.sha512), None)
        state = current.state if current else None
        if state == "registered":
            pass
        elif current is not None and state == "deprecated":
            self._reactivated.add(current.id)
            self._would("reactivate", "dry run: would reactivate", current)
        elif self._foreign_copies(entry):
            image, origin = self._foreign_copies(entry)[0]
            self.summary.would["adopt"] = self.summary.would.get("adopt", 0) + 1
            self.log.info("dry run: would adopt the image another tool registered", subscription=sub.name,
                          identifier=entry.identifier, image_id=image.id, registered_by=origin)
        else:
            self.summary.would["register"] = self.summary.would.get("register", 0) + 1
            self.log.info("dry run: would download and register", subscription=sub.name,
                          identifier=entry.identifier, version=entry.version, current_state=state)
        for old in rows:
            if old.sha512 != entry.sha512 and old.state == "registered":
                self._would("deprecate", "dry run: would deprecate once the new version is active", old,
                            reason=f"replaced by version {entry.version}")

    def _preview_retire(self, row: ImageRow, reason: str) -> None:
        if row.state == "registered":
            self._would("deprecate", "dry run: would deprecate", row, reason=reason)
        elif row.state in PENDING:
            self._would("drop", "dry run: would drop (never registered)", row, reason=reason)

    def _would(self, action: str, event: str, row: ImageRow, **details: Any) -> None:
        self.summary.would[action] = self.summary.would.get(action, 0) + 1
        self.log.info(event, subscription=row.subscription, identifier=row.identifier, version=row.version,
                      image_id=row.image_id, **details)
