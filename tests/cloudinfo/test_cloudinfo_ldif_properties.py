"""Property-based: any names, IDs and VO the cloud or configuration holds render to LDIF that reads back.

The LDIF is read with a strict RFC 2849 reader (tests/cloudinfo/ldif_reader.py) and its DNs with
ldap3's DN parser; values must equal the model's after the documented cleaning (docs/cloudinfo.rst,
"Hostile input"), which this file states again on its own.  The GLUE 2.1 JSON keeps every value as it is.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import unicodedata
from pathlib import Path

import pytest
from cloudinfo_helpers import build, ldif_of, write_site_config
from hostile_model import hostile_model
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ldif_reader import as_entries, dn_key, read_ldif

from fedcloud_site.cloudinfo.glue21json import write_json
from fedcloud_site.cloudinfo.ldif_values import ldif_id
from fedcloud_site.config import load_config

TRICKY = ["dn:", "DN:", " ", ":", "<", "#", "\t", "\x0b", "\x0c", "\n", "\r", "\x00", "\x85", "\xa0", "\u2003",
          "\ud800", "é", "e\u0301", ",", "+", "=", ";", "\\", '"', "~", "/", "a", "Z", "0", "_", "-", "中"]
hostile_text = st.one_of(
    st.text(max_size=20),
    st.lists(st.sampled_from(TRICKY), max_size=8).map("".join),
    st.tuples(st.text(max_size=6), st.sampled_from(TRICKY), st.text(max_size=6)).map("".join),
)
SAFE_RDN_VALUE = re.compile(r"[A-Za-z0-9._:/@~-]+\Z")


def documented(value: str) -> str:
    """The cleaning docs/cloudinfo.rst promises, written out independently of the code."""
    chars = []
    for char in value:
        if 0xD800 <= ord(char) <= 0xDFFF:
            chars.append("\ufffd")
        elif unicodedata.category(char) == "Cc":
            chars.append(" ")
        else:
            chars.append(char)
    return "".join(chars).replace("dn:", "dn :").strip()


@pytest.fixture(scope="module")
def base_model():
    with tempfile.TemporaryDirectory() as tmp:
        yield build(load_config(write_site_config(Path(tmp))))


def check_dns(records) -> None:
    seen = set()
    for dn, pairs in records:
        key = dn_key(dn)
        assert key not in seen, f"duplicate DN {dn}"
        assert len(key) == 2 or key[1:] in seen, f"{dn} comes before its parent"
        seen.add(key)
        attribute, value = key[0]
        assert SAFE_RDN_VALUE.match(value) and "dn:" not in value, dn
        assert [v for a, v in pairs if a.lower() == attribute] == [value], f"RDN value is not the ID: {dn}"


def check_values(text: str, records) -> None:
    assert text.replace("\n ", "").count("dn:") == len(records), "dn: outside a DN line (bdii-update splits there)"
    for _, pairs in records:
        for attribute, value in pairs:
            assert value == documented(value) and value != "", (attribute, value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(hostile_text, min_size=1, max_size=4),
       ids=st.lists(hostile_text, min_size=1, max_size=4, unique=True),
       flavour_ids=st.lists(hostile_text, min_size=1, max_size=3, unique=True), vo=hostile_text)
def test_any_names_ids_and_vo_render_to_ldif_that_reads_back_as_documented(base_model, names, ids, flavour_ids, vo):
    assume(vo not in {s.vo for s in base_model.shares})
    names = [names[i % len(names)] for i in range(len(ids))]
    model = hostile_model(base_model, names=names, ids=ids, flavour_ids=flavour_ids, vo=vo)
    text = ldif_of(model)
    records = read_ldif(text)
    check_dns(records)
    check_values(text, records)
    entries = as_entries(records)
    by_id = {key[0]: attributes for key, attributes in entries.items()}
    for image in model.images:
        published = by_id["glue2applicationenvironmentid", ldif_id(image.ldif_id)]
        name = documented(image.name)
        assert published.get("glue2entityname") == ([name] if name else None)
        assert published["glue2applicationenvironmentappname"] == [
            name or documented(image.id) or ldif_id(image.ldif_id)]
        other = published["glue2entityotherinfo"]
        assert (f"ImageID={documented(image.id)}" in other) == bool(documented(image.id))
        assert (f"OriginalID={documented(image.ldif_id)}" in other) == (ldif_id(image.ldif_id) != image.ldif_id)
        if not image.public:
            assert [v for v in other if v.startswith("CloudComputingShareForeignKey=")] == [
                f"CloudComputingShareForeignKey={ldif_id(s)}" for s in image.share_ids]
    share = next(s for s in model.shares if s.vo == vo)
    policy = by_id["glue2policyid", ldif_id(share.policy_id)]
    assert policy["glue2policyrule"] == [documented(f"VO:{vo}")]
    assert policy["glue2mappingpolicyshareforeignkey"] == [ldif_id(share.id)]
    assert ("glue2shareid", ldif_id(share.id)) in by_id
    for itype in model.instance_types:
        assert ("glue2resourceid", ldif_id(itype.ldif_id)) in by_id


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(hostile_text, min_size=1, max_size=3),
       ids=st.lists(hostile_text, min_size=1, max_size=3, unique=True), vo=hostile_text)
def test_any_values_round_trip_through_the_glue21_json(base_model, names, ids, vo):
    assume(vo not in {s.vo for s in base_model.shares})
    names = [names[i % len(names)] for i in range(len(ids))]
    model = hostile_model(base_model, names=names, ids=ids, flavour_ids=ids, vo=vo)
    out = io.BytesIO()
    write_json(model, out)
    document = json.loads(out.getvalue().decode("utf-8"))
    images = {obj["ID"]: obj for obj in document["CloudComputingImage"]}
    assert {i: images[i]["Name"] for i in map(utf8, ids)} == {utf8(i): utf8(n) for i, n in zip(ids, names)}
    assert [obj["ID"] for obj in document["CloudComputingInstanceType"]] == [utf8(t.id) for t in model.instance_types]
    assert utf8(vo) in [v for obj in document["MappingPolicy"] for v in obj["Associations"]["PolicyUserDomain"]]


def utf8(value: str) -> str:
    """What UTF-8 JSON can hold of ``value``: surrogates become U+FFFD (as docs/cloudinfo.rst says)."""
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)


@given(st.text())
def test_ldif_ids_are_safe_and_kept_when_already_safe(value):
    mapped = ldif_id(value)
    assert SAFE_RDN_VALUE.match(mapped) and "dn:" not in mapped
    assert (mapped == value) == ("~" not in mapped)
    assert dn_key(f"GLUE2ResourceID={mapped},o=glue")[0] == ("glue2resourceid", mapped)
