"""Every decision of an images sync, as a pure function of (lists, state, cloud view, now, settings).

:class:`Planner` reads a snapshot of the state database (:class:`StateView`) and of the cloud
(:class:`CloudView`) and turns the verified lists into :class:`Plan` actions: record a listed version, wait
for approval, reactivate, fix metadata, take over a copy already in the cloud, download and register,
deprecate, delete after the grace period.  It does no I/O: the applier (:mod:`.apply`) executes the plan,
and a dry run (:mod:`.preview`) prints the very same plan, so the two can never disagree.

While planning, the planner keeps its own projection of the state (what each action will leave behind),
so that later decisions of the same run see the earlier ones: a version reactivated for one list is not
deleted by the grace rule, an image deprecated with ``grace_period: 0`` is deleted in the same run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from ..cloud.base import Image
from ..timeutil import iso_utc, parse_time
from .adopt import Origin, foreign_copies
from .imagelist import ImageEntry, ImageList
from .register import copies_of_version, image_properties, is_ours, metadata_changes, prop
from .settings import Settings, Subscription
from .state import IN_CLOUD, PENDING, ImageRow

#: (subscription, dc:identifier, sha512): one image version, the state database's unique key
VersionKey = Tuple[str, str, str]

GONE_SUBSCRIPTION = "subscription removed from the configuration or disabled"


def key_of(row: ImageRow) -> VersionKey:
    return (row.subscription, row.identifier, row.sha512)


# ------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class ListView:
    """A subscription and the list to act on: verified in this run (``fresh``: removals from it count), the
    last good one (fetch or verification failed: nothing is retired because of it), or none."""

    subscription: Subscription
    image_list: Optional[ImageList]
    fresh: bool


@dataclass
class StateView:
    """The state database as the run found it: every image version row and the approvals."""

    rows: List[ImageRow]
    approvals: Set[Tuple[str, str]] = field(default_factory=set)


@dataclass
class CloudView:
    """The cloud as the run found it: our images, every image (for ``adopt_images_from``), the backend's
    naming rule; ``error`` when listing failed (then subscriptions that need the cloud are skipped)."""

    ours: Dict[str, Image] = field(default_factory=dict)
    everything: List[Image] = field(default_factory=list)
    image_name: Callable[[str, str], str] = lambda base, tag: base
    error: Optional[str] = None


# ------------------------------------------------------------------------------------------- actions
@dataclass(frozen=True)
class Track:
    """Record a listed version (new row ``listed``, or details refreshed; a removed one listed again)."""

    key: VersionKey
    image_list: ImageList
    entry: ImageEntry
    new_identifier: bool  # first time this subscription lists the identifier (hook SubscriptionImageNew)


@dataclass(frozen=True)
class Supersede:
    """A pending (never registered) older version is dropped: a newer one is listed."""

    key: VersionKey
    version: str


@dataclass(frozen=True)
class AwaitApproval:
    key: VersionKey


@dataclass(frozen=True)
class RecordOrphan:
    """Our image of this subscription that the state does not know (lost state, crash between upload and
    bookkeeping): recorded as registered, so that the normal rules keep, dedupe or retire it."""

    key: VersionKey
    image_id: str
    version: str
    title: str
    new_row: bool


@dataclass(frozen=True)
class Reactivate:
    """A deprecated version the list wants again."""

    key: VersionKey
    image_id: str


@dataclass(frozen=True)
class Vanished:
    """The registered image is gone from the cloud: the version is listed (registered) again."""

    key: VersionKey
    image_id: str


@dataclass(frozen=True)
class Claim:
    """Our copy of this version is in the cloud but the state lost it: recorded as registered."""

    key: VersionKey
    image_id: str


@dataclass(frozen=True)
class Adopt:
    """The copy another tool registered (``adopt_images_from``) gets our name and properties."""

    key: VersionKey
    image_id: str
    origin: Origin
    other_copies: Tuple[str, ...]
    changes: Dict[str, Optional[str]]
    new_name: Optional[str]


@dataclass(frozen=True)
class UpdateMetadata:
    key: VersionKey
    image_id: str
    changes: Dict[str, Optional[str]]
    new_name: Optional[str]


@dataclass(frozen=True)
class RemoveDuplicate:
    """Another copy of a version we have (e.g. an upload whose bookkeeping was lost)."""

    key: VersionKey
    image_id: str
    kept: str


@dataclass(frozen=True)
class EnsureTemplate:
    """The VM template of a registered image, for a subscription that wants templates."""

    key: VersionKey
    image_id: str
    entry: ImageEntry
    properties: Dict[str, str]


@dataclass(frozen=True)
class RetryLater:
    """A version whose last attempt failed, not yet due again."""

    key: VersionKey
    reason: str
    next_attempt: str


@dataclass(frozen=True)
class Fail:
    key: VersionKey
    reason: str


@dataclass(frozen=True)
class Download:
    """Download, verify, convert and register a version; once it is active, the older registered versions in
    ``replaces`` are deprecated (and its template made, when wanted)."""

    key: VersionKey
    image_list: ImageList
    entry: ImageEntry
    dest: Path
    name: str
    properties: Dict[str, str]
    state: str  # the version's state before this run's attempt
    replaces: Tuple[VersionKey, ...]
    template: bool


@dataclass(frozen=True)
class Retire:
    """Deprecate a registered version (``registered``) or drop a pending one."""

    key: VersionKey
    reason: str
    image_id: Optional[str]
    registered: bool
    version: str


@dataclass(frozen=True)
class Delete:
    """A version deprecated longer than the grace period: deleted (unless VMs still use it)."""

    key: VersionKey
    image_id: Optional[str]
    reason: Optional[str]
    version: str


@dataclass(frozen=True)
class Problem:
    """A subscription-wide problem the run reports (expired list, cloud unreachable)."""

    subscription: str
    reason: str
    cloud: bool = False


Action = Union[Track, Supersede, AwaitApproval, RecordOrphan, Reactivate, Vanished, Claim, Adopt, UpdateMetadata,
               RemoveDuplicate, EnsureTemplate, RetryLater, Fail, Download, Retire, Delete, Problem]


@dataclass
class Plan:
    """Actions per subscription (in order), then the run's closing actions (retiring what removed
    subscriptions left, deleting after the grace period)."""

    subscriptions: Dict[str, List[Action]] = field(default_factory=dict)
    closing: List[Action] = field(default_factory=list)

    def actions(self) -> List[Action]:
        return [a for actions in self.subscriptions.values() for a in actions] + list(self.closing)


# ------------------------------------------------------------------------------------------- planner
@dataclass
class _Projected:
    """What a state row will be once the actions planned so far are applied."""

    state: str
    image_id: Optional[str]
    deprecated_at: Optional[str]
    version: str
    reason: Optional[str]
    row: Optional[ImageRow]


def wanted_entries(sub: Subscription, image_list: ImageList, now: datetime) -> Dict[str, ImageEntry]:
    """The entries a subscription takes from its list: its filter, not expired; by identifier."""
    flt = sub.filter
    identifiers = {i.lower() for i in flt.identifiers}
    systems = {o.lower() for o in flt.os}
    wanted = {}
    for entry in image_list.images:
        if identifiers and entry.identifier.lower() not in identifiers:
            continue
        if flt.titles and not any(re.search(p, entry.title, re.IGNORECASE) for p in flt.titles):
            continue
        if systems and not ({entry.os.lower(), entry.osname.lower()} & systems):
            continue
        if entry.expired(now):
            continue
        wanted[entry.identifier] = entry
    return wanted


def unwanted_reasons(image_list: ImageList, wanted: Dict[str, ImageEntry], identifiers: Iterable[str],
                     now: datetime) -> Dict[str, str]:
    """Why each identifier a freshly accepted list no longer gives is retired.  Entries the list has but could
    not parse are not retired (their registered image is kept)."""
    protected = {bad.identifier for bad in image_list.invalid if bad.identifier}
    expired = {e.identifier: e.expires for e in image_list.images if e.expires is not None and e.expired(now)}
    listed = {e.identifier for e in image_list.images}
    reasons = {}
    for identifier in identifiers:
        if identifier in wanted or identifier in protected:
            continue
        if identifier in expired:
            reasons[identifier] = f"image expired at {iso_utc(expired[identifier])}"
        elif identifier in listed:
            reasons[identifier] = "no longer selected by the subscription's filter"
        else:
            reasons[identifier] = f"no longer in list {image_list.identifier} version {image_list.version}"
    return reasons


class Planner:
    """Plans one run: :meth:`subscription` for each list, then :meth:`closing`.  Pure: no I/O."""

    def __init__(self, settings: Settings, state: StateView, cloud: CloudView, now: datetime,
                 cache_path: Callable[[str, str, str], Path]) -> None:
        self.settings = settings
        self.cloud = cloud
        self.now = now
        self.stamp = iso_utc(now)
        self.approvals = set(state.approvals)
        self.cache_path = cache_path
        self.rows: Dict[VersionKey, _Projected] = {
            key_of(r): _Projected(r.state, r.image_id, r.deprecated_at, r.version, r.reason, r) for r in state.rows}

    # -- queries on the projection -------------------------------------------------------------------
    def _keys(self, subscription: str, identifier: Optional[str] = None,
              states: Optional[Sequence[str]] = None) -> List[VersionKey]:
        return [k for k, p in self.rows.items() if k[0] == subscription and (identifier is None or k[1] == identifier)
                and (states is None or p.state in states)]

    def _set(self, key: VersionKey, **values: Optional[str]) -> None:
        self.rows[key] = replace(self.rows[key], **values)  # type: ignore[arg-type]

    # -- per subscription ----------------------------------------------------------------------------
    def subscription(self, view: ListView) -> List[Action]:
        sub, image_list = view.subscription, view.image_list
        if image_list is None:
            return []
        if image_list.expired(self.now):
            actions: List[Action] = [Problem(sub.name, f"list expired at {iso_utc(image_list.expires)}")]
            reason = f"list {image_list.identifier} expired at {iso_utc(image_list.expires)}"
            return actions + self._retire_all(self._keys(sub.name), reason)
        if self.cloud.error is not None:
            return [Problem(sub.name, self.cloud.error, cloud=True)]
        actions = self._orphans(sub.name)
        wanted = wanted_entries(sub, image_list, self.now)
        for entry in wanted.values():
            actions.extend(self._image(sub, image_list, entry))
        if view.fresh:
            live = {k[1] for k, p in self.rows.items() if k[0] == sub.name and p.state != "removed"}
            reasons = unwanted_reasons(image_list, wanted, sorted(live), self.now)
            for key in self._keys(sub.name):
                if key[1] in reasons:
                    actions.extend(self._retire(key, reasons[key[1]]))
        return actions

    def _orphans(self, subscription: str) -> List[Action]:
        known = {p.image_id for k, p in self.rows.items() if k[0] == subscription and p.image_id}
        actions: List[Action] = []
        for image in self.cloud.ours.values():
            if image.id in known or not is_ours(image, subscription):
                continue
            identifier = prop(image, "appdb_id") or ""
            sha512 = (prop(image, "image_hash") or "").removeprefix("sha512:")
            if not identifier or not sha512:
                continue
            key = (subscription, identifier, sha512)
            current = self.rows.get(key)
            if current is not None and current.image_id is not None:
                continue
            version = prop(image, "vmcatcher_event_hv_version") or ""
            actions.append(RecordOrphan(key, image.id, version, prop(image, "vmcatcher_event_dc_title") or image.name,
                                        new_row=current is None))
            if current is None:
                self.rows[key] = _Projected("registered", image.id, None, version, None, None)
            else:
                self._set(key, state="registered", image_id=image.id, reason=None)
            known.add(image.id)
        return actions

    def _image(self, sub: Subscription, image_list: ImageList, entry: ImageEntry) -> List[Action]:
        key: VersionKey = (sub.name, entry.identifier, entry.sha512)
        actions: List[Action] = []
        current = self.rows.get(key)
        new_identifier = not self._keys(sub.name, entry.identifier)
        actions.append(Track(key, image_list, entry, new_identifier))
        if current is None:
            self.rows[key] = current = _Projected("listed", None, None, entry.version, None, None)
        elif current.state == "removed":
            self._set(key, state="listed", image_id=None, reason=None, version=entry.version)
            current = self.rows[key]
        for old in self._keys(sub.name, entry.identifier, ("listed", "failed", "verified", "fetched",
                                                          "awaiting-approval")):
            if old != key:
                actions.append(Supersede(old, entry.version))
                self._set(old, state="removed", reason=f"superseded by version {entry.version}")
        if sub.policy == "approve" and (sub.name, entry.identifier) not in self.approvals \
                and current.state not in IN_CLOUD:
            self._set(key, state="awaiting-approval")
            return actions + [AwaitApproval(key)]
        name = self.cloud.image_name(f"{self.settings.prefix}{sub.prefix}{entry.title}",
                                     f"{sub.name} {entry.version} {entry.sha512[:8]}")
        properties = image_properties(sub.name, image_list, entry, sub.vo)
        if current.state in IN_CLOUD and current.image_id:
            image = self.cloud.ours.get(current.image_id)
            if image is not None:
                reactivating = current.state == "deprecated"
                if reactivating:
                    actions.append(Reactivate(key, image.id))
                    self._set(key, state="registered", deprecated_at=None, reason=None)
                changes, new_name = metadata_changes(image, name, properties, keep_deprecation=reactivating)
                update = _update(key, image.id, changes, new_name)
                return actions + update + self._settled(sub, entry, properties, key, image.id)
            actions.append(Vanished(key, current.image_id))
            self._set(key, state="listed", image_id=None, reason="image vanished from the cloud")
        copies = copies_of_version(self.cloud.ours.values(), sub.name, entry.identifier, entry.sha512)
        if copies:
            found = copies[0]
            actions.append(Claim(key, found.id))
            self._set(key, state="registered", image_id=found.id, reason=None)
            changes, new_name = metadata_changes(found, name, properties)
            update = _update(key, found.id, changes, new_name)
            return actions + self._settled(sub, entry, properties, key, found.id, update_after_duplicates=update)
        adopted = self._foreign(entry)
        if adopted:
            (image, origin), others = adopted[0], adopted[1:]
            changes, new_name = metadata_changes(image, name, properties)
            actions.append(Adopt(key, image.id, origin, tuple(i.id for i, _ in others), changes, new_name))
            self._set(key, state="registered", image_id=image.id, reason=None)
            return actions + self._settled(sub, entry, properties, key, image.id)
        row = current.row
        if current.state == "failed" and row is not None and not row.due(self.now):
            return actions + [RetryLater(key, row.reason or "failed", row.next_attempt or "")]
        if entry.size > self.settings.max_image_bytes:
            self._set(key, state="failed")
            return actions + [Fail(key, f"hv:size {entry.size} exceeds max_image_size "
                                        f"({self.settings.max_image_bytes})")]
        if current.state in IN_CLOUD:  # marked in the cloud but without an image: it is downloaded, not deleted
            self._set(key, state="listed")
        replaces = tuple(k for k in self._keys(sub.name, entry.identifier, ("registered",)) if k != key)
        for old in replaces:  # projected as the download succeeding: the grace rule then sees them deprecated
            self._set(old, state="deprecated", deprecated_at=self.stamp, reason=f"replaced by version {entry.version}")
        return actions + [Download(key, image_list, entry, self.cache_path(*key), name, properties, current.state,
                                   replaces, self.settings.wants_template(sub))]

    def _settled(self, sub: Subscription, entry: ImageEntry, properties: Dict[str, str], key: VersionKey,
                 image_id: str, update_after_duplicates: Sequence[Action] = ()) -> List[Action]:
        """A version that is in the cloud: its duplicates go, its template is made, older versions retire."""
        actions: List[Action] = [RemoveDuplicate(key, copy.id, image_id) for copy in
                                 copies_of_version(self.cloud.ours.values(), *key) if copy.id != image_id]
        actions.extend(update_after_duplicates)
        if self.settings.wants_template(sub):
            actions.append(EnsureTemplate(key, image_id, entry, properties))
        for old in self._keys(sub.name, entry.identifier, ("registered",)):
            if old != key:
                actions.extend(self._retire(old, f"replaced by version {entry.version}"))
        return actions

    def _foreign(self, entry: ImageEntry) -> List[Tuple[Image, Origin]]:
        if not self.settings.adopt_images_from:
            return []
        return foreign_copies(self.cloud.everything, entry, self.settings.adopt_images_from)

    # -- retirement ----------------------------------------------------------------------------------
    def _retire(self, key: VersionKey, reason: str) -> List[Action]:
        projected = self.rows[key]
        if projected.state == "registered" and projected.image_id:
            self._set(key, state="deprecated", deprecated_at=self.stamp, reason=reason)
            return [Retire(key, reason, projected.image_id, registered=True, version=projected.version)]
        if projected.state in PENDING:
            self._set(key, state="removed", reason=reason)
            return [Retire(key, reason, None, registered=False, version=projected.version)]
        return []

    def _retire_all(self, keys: Iterable[VersionKey], reason: str) -> List[Action]:
        return [action for key in keys for action in self._retire(key, reason)]

    def closing(self, configured: Set[str]) -> List[Action]:
        """After every subscription: retire what removed or disabled subscriptions left, then delete what
        stayed deprecated longer than the grace period."""
        gone = sorted({k[0] for k in self.rows} - configured)
        actions = [a for name in gone for a in self._retire_all(
            [k for k in self._keys(name) if self.rows[k].state != "removed"], GONE_SUBSCRIPTION)]
        grace = timedelta(seconds=float(self.settings.grace_period))
        for key, projected in list(self.rows.items()):
            if projected.state != "deprecated":
                continue
            if projected.deprecated_at and parse_time(projected.deprecated_at) + grace > self.now:
                continue
            actions.append(Delete(key, projected.image_id, projected.reason, projected.version))
            self._set(key, state="removed")
        return actions


def _update(key: VersionKey, image_id: str, changes: Dict[str, Optional[str]],
            new_name: Optional[str]) -> List[Action]:
    return [UpdateMetadata(key, image_id, changes, new_name)] if changes or new_name else []
