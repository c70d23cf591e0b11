"""Strict list parsing and the ``images`` configuration section."""

from __future__ import annotations

import json

import pytest

from fedcloud_site.config import load_config
from fedcloud_site.errors import ConfigError
from fedcloud_site.images.imagelist import ImageListError, parse_image_list, version_lower
from fedcloud_site.images.settings import Settings as ImagesSettings
from fedcloud_site.images.settings import parse_size

SHA = "ab" * 64


def document(images=None, **list_fields):
    body = {"dc:identifier": "L", "hv:version": "1", "dc:date:expires": "2099-01-01T00:00:00Z",
            "hv:endorser": {"hv:x509": {"hv:dn": "/CN=e", "hv:ca": "/CN=ca"}},
            "hv:images": images if images is not None else []}
    body.update(list_fields)
    return json.dumps({"hv:imagelist": body}).encode()


def image(**fields):
    entry = {"dc:identifier": "i1", "hv:uri": "https://h.example.org/i.img", "hv:size": "10",
             "sl:checksum:sha512": SHA, "hv:version": "1"}
    entry.update(fields)
    return {"hv:image": entry}


def test_minimal_list_parses_with_defaults_for_optional_keys():
    parsed = parse_image_list(document([image()]))
    [entry] = parsed.images
    assert entry.title == "i1" and entry.description == "" and entry.expires is None and entry.size == 10


@pytest.mark.parametrize("fields,problem", [
    ({"hv:uri": "not a url"}, "hv:uri is not a well-formed"),
    ({"hv:size": "-1"}, "hv:size must be a non-negative integer"),
    ({"sl:checksum:sha512": "abc"}, "not 128 hexadecimal digits"),
    ({"hv:version": ["1"]}, "hv:version must be a string"),
    ({"dc:date:expires": "tomorrow"}, "not an ISO 8601 time"),
    ({"ad:mpuri": "ftp://x/y"}, "ad:mpuri is not a well-formed"),
])
def test_bad_image_entry_is_reported_with_index_identifier_and_key(fields, problem):
    parsed = parse_image_list(document([image(), image(**{"dc:identifier": "i2"}, **fields)]))
    assert [e.identifier for e in parsed.images] == ["i1"]
    [bad] = parsed.invalid
    assert str(bad).startswith("hv:images[1] (dc:identifier i2): ") and problem in str(bad)


def test_missing_identifier_and_duplicates_are_invalid_entries():
    entry = image()
    del entry["hv:image"]["dc:identifier"]
    parsed = parse_image_list(document([image(), image(), entry]))
    assert [str(b) for b in parsed.invalid] == [
        "hv:images[1] (dc:identifier i1): dc:identifier repeats hv:images[0]",
        "hv:images[2]: required key 'dc:identifier' missing"]


@pytest.mark.parametrize("data,problem", [
    (b"\xff\xfe", "not UTF-8"),
    (b"[]", "one top-level object"),
    (b'{"hv:imagelist": {}, "x": 1}', "one top-level object"),
    (b'{"hv:imagelist": {"dc:identifier": "a", "dc:identifier": "b"}}', "duplicate key 'dc:identifier'"),
])
def test_list_level_problems_reject_the_list(data, problem):
    with pytest.raises(ImageListError, match=problem):
        parse_image_list(data)


def test_list_without_images_list_is_rejected():
    with pytest.raises(ImageListError, match="hv:images missing or not a list"):
        parse_image_list(document(images={"a": 1}))


def test_versions_compare_numerically():
    assert version_lower("20150618211400", "20150618211401")
    assert version_lower("1.9", "1.10")
    assert not version_lower("2", "2")


def test_sizes_accept_binary_suffixes():
    assert parse_size("500M") == 500 << 20 and parse_size("1TiB") == 1 << 40 and parse_size("123") == 123
    with pytest.raises(ValueError):
        parse_size("lots")


def test_subscription_config_errors_name_the_key(write_config):
    base = "site: {name: X}\nvos: {vo1: {projects: [p]}}\nimages:\n  subscriptions:\n"
    path = write_config(base + "    - {name: a, url: ftp://x, endorser_dn: /CN=e, ca_dn: /CN=c}\n")
    with pytest.raises(ConfigError, match=r"images.subscriptions\[0\]: url: 'ftp://x' must be"):
        load_config(path)
    path = write_config(base + "    - {name: a, url: https://x, endorser_dn: CN=e, ca_dn: /CN=c}\n")
    with pytest.raises(ConfigError, match="endorser_dn: expected a slash-form DN"):
        load_config(path)
    path = write_config(base + "    - {name: a, url: https://x, endorser_dn: /CN=e, ca_dn: /CN=c, vo: nope}\n")
    with pytest.raises(ConfigError, match="VO 'nope' is not in the vos section"):
        load_config(path)
    path = write_config(base + "    - {name: a, url: https://x, endorser_dn: /CN=e, ca_dn: /CN=c}\n"
                               "  formats: [qcow3]\n")
    with pytest.raises(ConfigError, match="formats"):
        load_config(path)


def test_token_can_come_from_a_file_and_is_masked(write_config, tmp_path):
    (tmp_path / "token").write_text("abc\n")
    path = write_config("site: {name: X}\nimages:\n  subscriptions:\n"
                        "    - {name: a, url: https://x, endorser_dn: /CN=e, ca_dn: /CN=c, token_file: token}\n")
    config = load_config(path)
    assert config.section(ImagesSettings).subscriptions[0].token == "abc"
    assert config.as_plain()["images"]["subscriptions"][0]["token"] == "********"


def test_a_list_file_is_relative_to_the_configuration_and_excludes_url(write_config):
    base = "site: {name: X}\nimages:\n  subscriptions:\n"
    path = write_config(base + "    - {name: a, list_file: ../lists/x.list, endorser_dn: /CN=e, ca_dn: /CN=c}\n")
    sub = load_config(path).section(ImagesSettings).subscriptions[0]
    expected = (path.parent.parent / "lists" / "x.list").resolve()
    assert sub.location == expected.as_uri() and sub.url == ""
    for keys in ("url: https://x, list_file: x.list", "enabled: true"):
        path = write_config(base + f"    - {{name: a, {keys}, endorser_dn: /CN=e, ca_dn: /CN=c}}\n")
        with pytest.raises(ConfigError, match=r"subscriptions\[0\]: url: give either url or list_file"):
            load_config(path)
