"""One sync run: refresh every list, plan, then apply the plan (or, for a dry run, print it).

Per subscription (a failure in one never stops the others):

1. Fetch the list (conditional GET) and verify it (:mod:`.trust`). If anything fails the *last good list*
   is kept: its pending images may still be downloaded and registered, but nothing already registered is
   retired or replaced because of that subscription; the failure is logged and shown in ``images status``.
2. Plan (:mod:`.plan`, pure): for each wanted image (filter, per-image expiry, approval policy) its current
   version (``dc:identifier`` + sha512) must be in the cloud: keep or reactivate it, adopt an existing copy
   (ours after a crash, or another tool's), else download and register it; only once the new version is
   active are older versions retired.  Retire (deactivate, mark, delete after ``grace_period`` unless in use)
   images no longer in the list, expired ones, and all images of an expired list or of a removed/disabled
   subscription.
3. Apply (:mod:`.apply`): the state database and the cloud follow the plan; downloads run in parallel.
   A dry run (``--dry-run``) prints the same plan instead (:mod:`.preview`) and changes nothing.

Then VM templates nobody needs go, the cache is cleaned to its quota and, if images changed, the trigger
file is rewritten.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple, TypeVar

from ..atomic import atomic_write_bytes, atomic_write_text
from ..cloud.base import CloudBackend, CloudError
from ..timeutil import iso_utc, utcnow
from .apply import Applier
from .cache import Cache
from .fetch import FetchError, fetch_list, make_session
from .imagelist import ImageList, ImageListError, parse_image_list
from .plan import CloudView, ListView, Plan, Planner, StateView
from .preview import preview
from .register import Registrar, is_ours
from .settings import Settings, Subscription
from .state import StateDB, SubscriptionRow, state_db_path
from .summary import Summary
from .trust import ListRejected, verify_list

_T = TypeVar("_T")

__all__ = ["Summary", "Sync", "state_db_path"]


def _not_recorded(name: str, **values: Any) -> None:
    """A dry run records nothing."""


class Sync:
    """A sync run over all subscriptions of the ``images`` settings."""

    def __init__(self, config: Any, settings: Settings, cloud: Callable[[], CloudBackend], log: Any,
                 stop: Optional[threading.Event] = None, dry_run: bool = False,
                 now: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.settings = settings
        self._cloud_factory = cloud
        self.log = log
        self.stop = stop or threading.Event()
        self.dry_run = dry_run
        self.now = now
        self.state_dir = settings.state_path("images")
        self.lists_dir = self.state_dir / "lists"
        self.summary = Summary()

    # ------------------------------------------------------------------------------- run
    def run(self) -> Summary:
        if self.dry_run:
            return self._dry_run()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with StateDB(state_db_path(self.settings)) as db:
            applier = Applier(self.config, self.settings, db, self._cloud_factory, self.log, self.summary,
                              self.stop, self.now)
            applier.hook("ProcessPrefix")
            views = self._refresh_all(db, {s.name: s for s in db.subscriptions()})
            plan = self._plan(views, StateView(db.images(), db.approvals()), lambda: applier.registrar, db)
            for view in views:
                actions = plan.subscriptions.get(view.subscription.name)
                if actions and not self.stop.is_set():
                    self._isolated(view.subscription, db, applier.apply_subscription, view.subscription, actions)
            applier.run_downloads()
            applier.apply_closing(plan)
            applier.housekeeping()
            applier.hook("ProcessPostfix")
        if self.summary.cloud_changed:
            self._touch_trigger()
        return self.summary

    def _dry_run(self) -> Summary:
        """Fetch and verify the lists and print the plan a real run would apply; nothing is written,
        downloaded or changed in the cloud."""
        path = state_db_path(self.settings)
        state, subscriptions = StateView([]), {}
        if path.exists():
            with StateDB(path, read_only=True) as db:
                state, subscriptions = StateView(db.images(), db.approvals()), {s.name: s for s in db.subscriptions()}
        views = self._refresh_all(None, subscriptions)
        plan = self._plan(views, state, lambda: Registrar(self._cloud_factory(), self.log), None)
        preview(plan, self.summary, self.log)
        return self.summary

    def _refresh_all(self, db: Optional[StateDB], rows: dict) -> List[ListView]:
        views = []
        for sub in self.settings.subscriptions:
            if not sub.enabled or self.stop.is_set():
                continue
            view = self._isolated(sub, db, self._refresh, sub, rows.get(sub.name), db)
            if view is not None:
                views.append(view)
        return views

    def _plan(self, views: List[ListView], state: StateView, registrar: Callable[[], Registrar],
              db: Optional[StateDB]) -> Plan:
        now = self.now()
        planner = Planner(self.settings, state, self._cloud_view(views, now, registrar), now,
                          Cache(self.settings.cache_dir, 0, 0).path_for)
        plan = Plan()
        for view in views:
            actions = self._isolated(view.subscription, db, planner.subscription, view)
            if actions:
                plan.subscriptions[view.subscription.name] = actions
        plan.closing = planner.closing({s.name for s in self.settings.subscriptions if s.enabled})
        return plan

    def _cloud_view(self, views: List[ListView], now: datetime, registrar: Callable[[], Registrar]) -> CloudView:
        """The cloud's images, listed once, when some list is usable (else the cloud is not contacted);
        ``registrar`` is called at most once."""
        if not any(v.image_list is not None and not v.image_list.expired(now) for v in views):
            return CloudView()
        try:
            cloud = registrar()
            images = cloud.snapshot()
        except CloudError as exc:
            return CloudView(error=f"cloud: {type(exc).__name__}: {exc}")
        return CloudView(ours={i.id: i for i in images if is_ours(i)},
                         everything=images if self.settings.adopt_images_from else [],
                         image_name=cloud.cloud.image_name)

    def _isolated(self, sub: Subscription, db: Optional[StateDB], step: Callable[..., _T], *args: Any) -> Optional[_T]:
        """``step(*args)`` for one subscription; any surprise is that subscription's named failure (logged with
        its traceback) and the run goes on with the others, retirement and expiry."""
        try:
            return step(*args)
        except Exception as exc:  # noqa: BLE001 - one subscription's surprise must not abort the others
            reason = f"internal: {type(exc).__name__}: {exc}"
            self.summary.lists_failed += 1
            self.summary.problem(sub.name, reason)
            self.log.exception("subscription failed; the other subscriptions go on", subscription=sub.name,
                               reason=reason)
            if db is None:
                return None
            try:
                db.save_subscription(sub.name, url=sub.location, state="failed", reason=reason,
                                     last_checked=iso_utc(self.now()))
            except Exception as db_exc:  # noqa: BLE001 - the failure is already counted and logged
                self.log.error("cannot record the subscription's failure", subscription=sub.name, error=str(db_exc))
            return None

    # ------------------------------------------------------------------------------- lists
    def _list_files(self, name: str) -> Tuple[Path, Path]:
        return self.lists_dir / f"{name}.smime", self.lists_dir / f"{name}.json"

    def _refresh(self, sub: Subscription, row: Optional[SubscriptionRow], db: Optional[StateDB]) -> ListView:
        """Fetch (conditionally, when the run records) and verify a subscription's list, and store it; on any
        failure the last good list is kept.  Without ``db`` (dry run) nothing is stored or recorded."""
        record = db.save_subscription if db is not None else _not_recorded
        signed_file, content_file = self._list_files(sub.name)
        have_good = row is not None and row.state != "never" and content_file.exists() and signed_file.exists()
        now = self.now()
        try:
            session = make_session(self.settings.capath, self.settings.ca_bundle, sub.token, sub.location)
            with session:
                conditional = have_good and row is not None and db is not None
                response = fetch_list(session, sub.location, self.settings.max_list_bytes,
                                      float(self.settings.list_timeout), etag=row.etag if conditional and row else None,
                                      last_modified=row.last_modified if conditional and row else None)
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
            self.summary.problem(sub.name, reason)
            self.log.error("image list not accepted; keeping the last good list and all registered images",
                           subscription=sub.name, url=sub.location, stage=stage, reason=reason)
            record(sub.name, url=sub.location, state="failed", reason=reason, last_checked=iso_utc(now))
            return ListView(sub, self._last_good(sub) if have_good else None, fresh=False)
        image_list = verified.image_list
        warnings = "; ".join(str(bad) for bad in image_list.invalid)
        for bad in image_list.invalid:
            self.log.error("invalid image entry skipped (its registered image is kept)", subscription=sub.name,
                           entry=str(bad))
        if not unchanged and db is not None:
            try:
                atomic_write_bytes(signed_file, signed)
                atomic_write_bytes(content_file, verified.content)
            except OSError as exc:
                reason = f"state: cannot store the accepted list in {self.lists_dir}: {exc.strerror or exc}"
                self.summary.lists_failed += 1
                self.summary.problem(sub.name, reason)
                self.log.error("image list verified but not stored; keeping the last good list",
                               subscription=sub.name, reason=reason)
                record(sub.name, url=sub.location, state="failed", reason=reason, last_checked=iso_utc(now))
                return ListView(sub, self._last_good(sub) if have_good else None, fresh=False)
        record(
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
        return ListView(sub, image_list, fresh=True)

    def _last_good(self, sub: Subscription) -> Optional[ImageList]:
        try:
            return parse_image_list(self._list_files(sub.name)[1].read_bytes())
        except (OSError, ImageListError) as exc:
            self.log.warning("last good list unreadable", subscription=sub.name, error=str(exc))
            return None

    def _touch_trigger(self) -> None:
        path = self.settings.trigger_path()
        data = dict(self.summary.as_dict(), changed_at=iso_utc(self.now()))
        atomic_write_text(path, json.dumps(data, sort_keys=True) + "\n", mode=0o644)
