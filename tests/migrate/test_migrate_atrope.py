"""atrope's sources (its own hepix.yaml.sample) -> images.subscriptions."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcloud_site.migrate import atrope
from fedcloud_site.migrate.errors import MigrationError
from fedcloud_site.migrate.report import Report


def test_the_sample_sources_become_subscriptions(tmp_path: Path, atrope_sources: str):
    path = tmp_path / "sources.yaml"
    path.write_text(atrope_sources, encoding="utf-8")
    report = Report()
    images = atrope.migrate(path, report).sections["images"]
    subs = {s["name"]: s for s in images["subscriptions"]}
    assert set(subs) == {"ttycorelinux-egi", "vo.fedcloud.egi.eu"}  # disabled entries without a url: skipped
    fedcloud = subs["vo.fedcloud.egi.eu"]
    assert fedcloud["url"] == "https://vmcaster.appdb.egi.eu/store/vo/fedcloud.egi.eu/image.list"
    assert fedcloud["endorser_dn"] == "/DC=EU/DC=EGI/C=NL/O=Hosts/O=EGI.eu/CN=appdb.egi.eu"
    assert fedcloud["ca_dn"] == "/DC=ORG/DC=SEE-GRID/CN=SEE-GRID CA 2013"
    assert fedcloud["filter"] == {"identifiers": ["662b0e71-3e21-5f43-b6a1-cc2f51319fa7"]}
    assert fedcloud["prefix"] == "FEDCLOUD "
    assert fedcloud["token"] == "17580f07-1e33-4a38-94e3-3386daced5be"
    assert subs["ttycorelinux-egi"]["sharing"] == "public"  # atrope made lists without token public
    assert "17580f07" not in report.render()
    assert {"foo", "bar"} <= set(report.unmapped_names())


def test_names_are_made_valid_and_unique():
    taken: set = set()
    names = []
    for raw in ("a b", "a-b", "a/b", "--", "é"):
        names.append(atrope.subscription_name(raw, taken))
        taken.add(names[-1])
    assert names == ["a-b", "a-b-2", "a-b-3", "atrope", "atrope-2"]


@pytest.mark.parametrize("text, section, option", [
    ("l: {url: ftp://x, endorser: {dn: /a, ca: /b}}\n", "l", "url"),
    ("l: {url: 'https://x', endorser: {dn: 'CN=a', ca: /b}}\n", "l", "endorser.dn"),
    ("l: {url: 'https://x'}\n", "l", "endorser"),
    ("l: {url: 'https://x', endorser: {dn: /a, ca: /b}, images: 3}\n", "l", "images"),
    ("l: {url: 'https://x', endorser: {dn: /a, ca: /b}, enabled: maybe}\n", "l", "enabled"),
    ("l: [1, 2]\n", "l", None),
])
def test_a_malformed_source_is_a_named_error(tmp_path: Path, text: str, section, option):
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MigrationError) as caught:
        atrope.migrate(path, Report())
    assert (caught.value.file, caught.value.section, caught.value.option) == (str(path), section, option)
