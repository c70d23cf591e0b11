"""A hostile or broken signed list harms only its own subscription: every other subscription, retirement and
expiry still run, and the failure names the subscription and the field at fault."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedcloud_site.images.imagelist import ImageListError, parse_image_list, version_lower

ENDORSER_DN = "/DC=org/DC=example/O=Hosts/CN=appdb.example.org"  # as the images conftest's PKI issues it
CA_DN = "/DC=org/DC=example/CN=Test Grid CA"

OTHER_PATH = "/store/vo/other.vo/image.list"
OTHER_ID = "6b1f2e3d-0000-4000-8000-00000000b002"


def two_subscriptions(world, bad_list_bytes):
    """'fedcloud' serves a good list; 'other' serves ``bad_list_bytes`` (signed by the real endorser)."""
    world.publish(world.image_list([world.image("good.raw")]))
    signed = world.sign(bad_list_bytes)
    url = world.server.put(OTHER_PATH, signed, world.files / "lists" / uuid.uuid4().hex)
    good = {"name": "fedcloud", "url": world.server.url + world.list_path, "endorser_dn": ENDORSER_DN,
            "ca_dn": CA_DN, "vo": "fedcloud.egi.eu"}
    other = dict(good, name="other", url=url)
    world.write_config(subscriptions=[other, good], hooks=[{"command": "true"}])


def _subscription_row(world, name):
    from fedcloud_site.images.state import StateDB
    with StateDB(world.tmp / "state" / "images.sqlite") as db:
        row = db.subscription(name)
        return dict(vars(row)) if row else {}


def registered_titles(world):
    return sorted(i.name for i in world.cloud_images())


def test_a_superscript_digit_in_a_size_is_that_entry_s_named_fault(world):
    doc = world.image_list([world.image("sup.raw", **{"hv:size": "²"}), world.image("fine.raw")],
                           identifier=OTHER_ID)
    two_subscriptions(world, json.dumps(doc).encode())
    world.sync()
    assert "Image good.raw" in registered_titles(world) and "Image fine.raw" in registered_titles(world)
    reason = _subscription_row(world, "other")["reason"]
    assert "hv:size" in reason and "'²'" in reason


def test_a_superscript_digit_in_a_list_version_is_compared_not_crashed_on(world):
    assert version_lower("1", "1²") in (True, False)
    assert version_lower("٣", "2") in (True, False)  # Arabic-Indic digit: text, not a number


def test_deeply_nested_json_fails_only_its_own_subscription(world):
    nested = b'{"hv:imagelist": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    two_subscriptions(world, nested)
    assert world.sync() == 1
    assert registered_titles(world) == ["Image good.raw"]
    other = _subscription_row(world, "other")
    assert other["state"] == "failed" and "too deeply" in other["reason"]
    assert _subscription_row(world, "fedcloud")["state"] == "ok"


def test_a_nul_in_a_title_never_reaches_a_hook_or_the_cloud(world):
    doc = world.image_list([world.image("nul.raw", title="evil\x00title"), world.image("fine.raw")],
                           identifier=OTHER_ID)
    two_subscriptions(world, json.dumps(doc).encode())
    world.sync()
    titles = registered_titles(world)
    assert "Image good.raw" in titles and "Image fine.raw" in titles
    assert not any("\x00" in t for t in titles)
    assert "dc:title contains the control character U+0000" in _subscription_row(world, "other")["reason"]


def test_retirement_still_runs_when_another_subscription_breaks(world):
    world.publish(world.image_list([world.image("old.raw")]))
    world.write_config()
    assert world.sync() == 0
    world.publish(world.image_list([], version="20250101000000"))  # old.raw left its list: retire it
    nested = b"[" * 200_000 + b"]" * 200_000
    url = world.server.put(OTHER_PATH, world.sign(nested), world.files / "lists" / uuid.uuid4().hex)
    good = {"name": "fedcloud", "url": world.server.url + world.list_path, "endorser_dn": ENDORSER_DN,
            "ca_dn": CA_DN, "vo": "fedcloud.egi.eu"}
    world.write_config(subscriptions=[dict(good, name="other", url=url), good])
    world.sync()
    assert all(row["state"] != "registered" for row in world.status() if row["subscription"] == "fedcloud")


# -- the parser on any input -------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30)

GOOD = {"hv:imagelist": {
    "dc:identifier": OTHER_ID, "hv:version": "1", "dc:date:expires": "2099-01-01T00:00:00Z",
    "hv:endorser": {"hv:x509": {"hv:dn": ENDORSER_DN, "hv:ca": CA_DN}},
    "hv:images": [{"hv:image": {"dc:identifier": "a", "hv:uri": "https://h.example.org/a", "hv:size": "10",
                                "sl:checksum:sha512": "0" * 128, "hv:version": "1", "dc:title": "A"}}]}}
FIELDS = ["dc:identifier", "hv:uri", "hv:size", "sl:checksum:sha512", "hv:version", "dc:title", "hv:ram_minimum",
          "dc:date:expires", "ad:mpuri"]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_give_a_list_or_a_named_error(data):
    try:
        parse_image_list(data)
    except ImageListError:
        pass


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELDS), json_values)
def test_any_value_in_any_entry_field_gives_a_list_or_a_named_error(field, value):
    doc = json.loads(json.dumps(GOOD))
    doc["hv:imagelist"]["hv:images"][0]["hv:image"][field] = value
    try:
        parsed = parse_image_list(json.dumps(doc).encode())
    except ImageListError as exc:
        assert str(exc)
        return
    for entry in parsed.images:  # what is accepted is clean enough for environments, properties and logs
        for text in (entry.identifier, entry.title, entry.uri, entry.version):
            assert "\x00" not in text
        assert entry.size > 0
    for bad in parsed.invalid:
        assert field in bad.problem or "dc:identifier" in bad.problem or "hv:image" in bad.problem


@pytest.mark.parametrize("text", ["²", "١٢", "1e3", "-1", " 12 x", "9" * 40])
def test_sizes_are_plain_ascii_decimal(text):
    doc = json.loads(json.dumps(GOOD))
    doc["hv:imagelist"]["hv:images"][0]["hv:image"]["hv:size"] = text
    parsed = parse_image_list(json.dumps(doc).encode())
    assert not parsed.images and "hv:size" in parsed.invalid[0].problem
