"""The images planner is a pure function of (lists, state, cloud view, now, settings): its safety rules hold
for any state it may find, and the same inputs always give the same plan."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import List, Optional

from hypothesis import given, settings
from hypothesis import strategies as st

from fedcloud_site.cloud.base import Image
from fedcloud_site.images.imagelist import Endorser, ImageEntry, ImageList
from fedcloud_site.images.plan import (
    CloudView,
    Delete,
    Download,
    ListView,
    Plan,
    Planner,
    Problem,
    Reactivate,
    Retire,
    StateView,
    Track,
)
from fedcloud_site.images.register import image_properties
from fedcloud_site.images.settings import Settings, Subscription
from fedcloud_site.images.state import IN_CLOUD, STATES, ImageRow
from fedcloud_site.timeutil import iso_utc

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SUB = Subscription(name="vo", endorser_dn="/CN=endorser", ca_dn="/CN=ca", url="https://lists.example.org/l")
IDENTIFIERS = ["a", "b", "c", "d"]
SHAS = ["1" * 128, "2" * 128, "3" * 128]


def entry(identifier: str, sha512: str, version: str = "1", expires: Optional[datetime] = None) -> ImageEntry:
    return ImageEntry(identifier=identifier, uri=f"https://img.example.org/{identifier}", size=10, sha512=sha512,
                      version=version, title=f"Image {identifier}", expires=expires)


def image_list(entries: List[ImageEntry], expires: datetime = NOW + timedelta(days=30)) -> ImageList:
    return ImageList(identifier="list-1", version="2026", created=None, expires=expires,
                     endorser=Endorser(dn="/CN=endorser", ca="/CN=ca"), images=tuple(entries))


def row(number: int, identifier: str, sha512: str, state: str, image_id: Optional[str] = None,
        deprecated_at: Optional[datetime] = None, subscription: str = "vo") -> ImageRow:
    return ImageRow(id=number, subscription=subscription, identifier=identifier, sha512=sha512, version="1", size=10,
                    title=f"Image {identifier}", state=state, reason=None, image_id=image_id, cache_file=None,
                    attempts=0, next_attempt=None, list_identifier="list-1", entry=None, first_seen=None,
                    registered_at=None, deprecated_at=iso_utc(deprecated_at) if deprecated_at else None,
                    removed_at=None, updated_at=None)


def our_image(r: ImageRow, the_list: ImageList) -> Image:
    props = image_properties(r.subscription, the_list, entry(r.identifier, r.sha512), None)
    return Image(id=r.image_id or "", name=f"Image {r.identifier}", status="active", properties=props)


def plan_of(view: ListView, rows: List[ImageRow], cloud: CloudView, grace: float = 3600,
            configured=("vo",)) -> Plan:
    planner = Planner(Settings(grace_period=grace, subscriptions=[SUB]), StateView(rows), cloud, NOW,  # type: ignore
                      lambda *key: Path("/cache").joinpath(*key[:2]))
    plan = Plan(subscriptions={view.subscription.name: planner.subscription(view)})
    plan.closing = planner.closing(set(configured))
    return plan


@st.composite
def situations(draw):
    """Any state rows of the subscription, a list, which registered images the cloud still has."""
    keys = draw(st.lists(st.tuples(st.sampled_from(IDENTIFIERS), st.sampled_from(SHAS)), unique=True, max_size=8))
    rows = []
    for number, (identifier, sha512) in enumerate(keys, 1):
        state = draw(st.sampled_from(STATES))
        deprecated_at = draw(st.sampled_from([None, NOW - timedelta(days=2), NOW - timedelta(minutes=1)]))
        image_id = f"img-{number}" if state in IN_CLOUD and draw(st.booleans()) else None
        rows.append(row(number, identifier, sha512, state, image_id,
                        deprecated_at if state == "deprecated" else None))
    listed = draw(st.lists(st.tuples(st.sampled_from(IDENTIFIERS), st.sampled_from(SHAS)),
                           unique_by=lambda pair: pair[0], max_size=4))
    the_list = image_list([entry(identifier, sha512, version="2") for identifier, sha512 in listed])
    in_cloud = [r for r in rows if r.image_id and draw(st.booleans())]
    cloud = CloudView(ours={r.image_id: our_image(r, the_list) for r in in_cloud})  # type: ignore[misc]
    return rows, the_list, cloud, draw(st.booleans())


@settings(max_examples=300, deadline=None)
@given(situations())
def test_no_plan_retires_or_deletes_a_version_its_list_wants(situation):
    rows, the_list, cloud, fresh = situation
    plan = plan_of(ListView(SUB, the_list, fresh=fresh), rows, cloud)
    wanted = {("vo", e.identifier, e.sha512) for e in the_list.images}
    for action in plan.actions():
        if isinstance(action, (Retire, Delete)):
            assert action.key not in wanted, action


@settings(max_examples=300, deadline=None)
@given(situations())
def test_a_list_that_was_not_verified_in_this_run_only_retires_versions_it_replaces(situation):
    rows, the_list, cloud, _ = situation
    plan = plan_of(ListView(SUB, the_list, fresh=False), rows, cloud)
    wanted_identifiers = {e.identifier for e in the_list.images}
    for action in plan.actions():
        if isinstance(action, Retire):
            assert action.key[1] in wanted_identifiers and action.reason.startswith("replaced by version"), action


@settings(max_examples=300, deadline=None)
@given(situations())
def test_deletions_wait_for_the_grace_period_and_nothing_is_both_downloaded_and_retired(situation):
    rows, the_list, cloud, fresh = situation
    plan = plan_of(ListView(SUB, the_list, fresh=fresh), rows, cloud, grace=3600)
    an_hour_ago = iso_utc(NOW - timedelta(hours=1))
    long_deprecated = {("vo", r.identifier, r.sha512) for r in rows
                       if r.state == "deprecated" and (r.deprecated_at is None or r.deprecated_at < an_hour_ago)}
    actions = plan.actions()
    for action in actions:
        if isinstance(action, Delete):
            assert action.key in long_deprecated, action  # a version deprecated in this run is not deleted yet
    downloaded = {a.key for a in actions if isinstance(a, Download)}
    retired = {a.key for a in actions if isinstance(a, (Retire, Delete))}
    assert not downloaded & retired


@settings(max_examples=100, deadline=None)
@given(situations())
def test_the_same_inputs_give_the_same_plan(situation):
    rows, the_list, cloud, fresh = situation
    view = ListView(SUB, the_list, fresh=fresh)
    assert plan_of(view, rows, cloud).actions() == plan_of(view, rows, cloud).actions()


def test_a_deprecated_version_the_list_wants_again_is_reactivated_not_deleted():
    the_list = image_list([entry("a", SHAS[0])])
    deprecated = row(1, "a", SHAS[0], "deprecated", "img-1", deprecated_at=NOW - timedelta(days=2))
    plan = plan_of(ListView(SUB, the_list, fresh=True), [deprecated], CloudView(ours={"img-1": our_image(
        deprecated, the_list)}), grace=0)
    kinds = [type(a) for a in plan.actions()]
    assert Reactivate in kinds and Delete not in kinds


def test_a_cloud_that_cannot_be_listed_stops_the_subscription_before_any_change():
    the_list = image_list([entry("b", SHAS[1])])
    registered = row(1, "a", SHAS[0], "registered", "img-1")
    plan = plan_of(ListView(SUB, the_list, fresh=True), [registered], CloudView(error="cloud: timed out"))
    assert plan.subscriptions["vo"] == [Problem("vo", "cloud: timed out", cloud=True)] and plan.closing == []


def test_a_removed_subscription_has_its_images_retired_and_with_no_grace_deleted_in_the_same_run():
    left = row(1, "a", SHAS[0], "registered", "img-1", subscription="gone")
    plan = plan_of(ListView(SUB, None, fresh=False), [left], CloudView(), grace=0)
    assert [type(a) for a in plan.closing] == [Retire, Delete]
    assert plan.closing[0].reason.startswith("subscription removed")  # type: ignore[union-attr]


def test_a_new_version_is_downloaded_and_replaces_the_registered_one_only_once_active():
    old = row(1, "a", SHAS[0], "registered", "img-1")
    the_list = image_list([entry("a", SHAS[1], version="2")])
    plan = plan_of(ListView(SUB, the_list, fresh=True), [old], CloudView(ours={"img-1": our_image(old, the_list)}))
    actions = plan.subscriptions["vo"]
    assert [type(a) for a in actions] == [Track, Download]
    assert actions[1].replaces == (("vo", "a", SHAS[0]),)  # type: ignore[union-attr]
