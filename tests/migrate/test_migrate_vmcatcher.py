"""vmcatcher's database -> images.subscriptions.

The database is made by vmcatcher's own schema and constructors (``vmcatcher/databaseDefinition.py`` of
vmcatcher 0.6.3, fetched from its repository, run with SQLAlchemy 1.4 in a virtualenv of its own), the
way ``vmcatcher_endorser``/``vmcatcher_subscribe``/``vmcatcher_image`` fill it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest

from fedcloud_site.cli import main
from fedcloud_site.config import load_config
from fedcloud_site.images.settings import Settings as ImagesSettings
from fedcloud_site.migrate import vmcatcher
from fedcloud_site.migrate.errors import MigrationError
from fedcloud_site.migrate.report import Report
from fedcloud_testing.peers import PeerUnavailable, default_venv, ensure_venv, github_file

SCHEMA_SHA256 = "28950789307d3a057cb021b11338f150e3ec20d49cdc9b40e105bba4f2af8cac"
ENDORSER = {"dc:identifier": "appdb", "hv:dn": "/DC=EU/DC=EGI/C=NL/O=Hosts/O=EGI.eu/CN=appdb.egi.eu",
            "hv:ca": "/DC=ORG/DC=SEE-GRID/CN=SEE-GRID CA 2013"}
MAKE_DB = """
import json, sys
sys.path.insert(0, sys.argv[1])
from databaseDefinition import (Base, Endorser, EndorserPrincible, ImageDefinition, Subscription,
                                SubscriptionAuth)
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
spec = json.loads(sys.argv[3])
engine = create_engine("sqlite:///" + sys.argv[2])
Base.metadata.create_all(engine)
session = sessionmaker(bind=engine)()
endorser = Endorser(spec["endorser"])
session.add(endorser)
session.flush()
session.add(EndorserPrincible(endorser.id, spec["endorser"]))
for sub in spec["subscriptions"]:
    row = Subscription(sub["details"], authorised=sub["authorised"])
    session.add(row)
    session.flush()
    if sub["endorsed"]:
        session.add(SubscriptionAuth(row.id, endorser.id, True))
    for identifier, cache in sub["images"]:
        session.add(ImageDefinition(row.id, {"dc:identifier": identifier, "cache": cache}))
session.commit()
"""


@pytest.fixture(scope="module")
def make_database(tmp_path_factory):
    try:
        schema = github_file("hepix-virtualisation/vmcatcher", "vmcatcher-0.6.3", "vmcatcher/databaseDefinition.py",
                             SCHEMA_SHA256)
        python = ensure_venv(default_venv("vmcatcher-sqlalchemy-1.4"), "SQLAlchemy>=1.4,<2")
    except PeerUnavailable as exc:
        pytest.skip(str(exc))

    def make(path: Path, subscriptions: List[Dict[str, Any]]) -> Path:
        spec = {"endorser": ENDORSER, "subscriptions": subscriptions}
        result = subprocess.run([str(python), "-c", MAKE_DB, str(schema.parent), str(path), json.dumps(spec)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        return path

    return make


def _sub(identifier: str, description: str, uri: str, images=(), authorised=True, endorsed=True,
         **transfer: Any) -> Dict[str, Any]:
    details = {"dc:identifier": identifier, "dc:description": description, "hv:uri": uri}
    details.update({f"il.transfer.protocol:{k}" if k != "updatemode" else "il.transfer.updatemode": v
                    for k, v in transfer.items()})
    return {"details": details, "authorised": authorised, "endorsed": endorsed, "images": list(images)}


def test_subscriptions_endorsers_tokens_and_subscribed_images(make_database, tmp_path: Path):
    db = make_database(tmp_path / "vmcatcher.db", [
        _sub("list-1", "fedcloud.egi.eu VO list", "https://vmcaster.appdb.egi.eu/store/vo/fedcloud.egi.eu/image.list",
             images=[("img-a", 1), ("img-b", 0), ("img-c", 1)], userName="17580f07-token", password="x-oauth-basic"),
        _sub("list-2", "tiny", "https://vmcaster.appdb.egi.eu/store/vappliance/tiny/image.list", updatemode=2),
        _sub("list-3", "not authorised", "https://example.org/3/image.list", authorised=False),
        _sub("list-4", "no endorser", "https://example.org/4/image.list", endorsed=False),
    ])
    report = Report()
    images = vmcatcher.migrate(db, report).sections["images"]
    subs = {s["name"]: s for s in images["subscriptions"]}
    assert sorted(subs) == ["fedcloud.egi.eu-VO-list", "tiny"]
    vo = subs["fedcloud.egi.eu-VO-list"]
    assert vo["url"] == "https://vmcaster.appdb.egi.eu/store/vo/fedcloud.egi.eu/image.list"
    assert (vo["endorser_dn"], vo["ca_dn"]) == (ENDORSER["hv:dn"], ENDORSER["hv:ca"])
    assert vo["identifier"] == "list-1" and vo["token"] == "17580f07-token"
    assert vo["filter"] == {"identifiers": ["img-a", "img-c"]}
    assert "filter" not in subs["tiny"]  # autosubscribe: every image
    assert images["adopt_images_from"] == ["vmcatcher"]
    assert {"subscription list-3", "subscription list-4"} <= set(report.unmapped_names())
    assert "17580f07-token" not in report.render()


def test_with_atrope_both_go_into_one_images_section(make_database, tmp_path: Path, site_dir: Path,
                                                     atrope_sources: str):
    db = make_database(tmp_path / "vmcatcher.db", [
        _sub("list-1", "vo.fedcloud.egi.eu", "https://example.org/1/image.list", updatemode=2)])
    sources = tmp_path / "sources.yaml"
    sources.write_text(atrope_sources, encoding="utf-8")
    migrate = ["-c", str(site_dir / "fedcloud-site.yaml"), "migrate", "--from", f"atrope={sources}",
               "--from", f"vmcatcher={db}"]
    assert main(migrate) == 2  # no site section anywhere: refused, nothing written
    assert list((site_dir / "conf.d").iterdir()) == []
    (site_dir / "fedcloud-site.yaml").write_text(f"site: {{name: TEST-SITE}}\naccounting: {{state_dir: {tmp_path}}}\n",
                                                 encoding="utf-8")
    assert main(migrate) == 0
    config = load_config(site_dir / "fedcloud-site.yaml")
    images = config.section(ImagesSettings)
    assert [s.name for s in images.subscriptions] == ["ttycorelinux-egi", "vo.fedcloud.egi.eu",
                                                             "vo.fedcloud.egi.eu-2"]
    assert images.adopt_images_from == ["atrope", "vmcatcher"]
    assert not (site_dir / "conf.d" / "60-migrated-vmcatcher.yaml").exists()


@pytest.mark.parametrize("content", [b"", b"not a database at all", b"SQLite format 3\x00" + b"\x00" * 100])
def test_a_file_that_is_not_vmcatchers_database_is_a_named_error(tmp_path: Path, content: bytes):
    path = tmp_path / "vmcatcher.db"
    path.write_bytes(content)
    with pytest.raises(MigrationError) as caught:
        vmcatcher.migrate(path, Report())
    assert caught.value.file == str(path)
