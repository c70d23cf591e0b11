"""cASO's configuration (its own caso.conf.sample, filled as an operator does) and lastrun files -> ours."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fedcloud_site.accounting.state import StateStore
from fedcloud_site.migrate import caso
from fedcloud_site.migrate.command import migrate
from fedcloud_site.migrate.errors import MigrationError
from fedcloud_site.migrate.fragments import read_back
from fedcloud_site.migrate.report import Report


def test_the_untouched_sample_is_refused_for_want_of_a_site_name(tmp_path: Path, caso_sample: str):
    conf = tmp_path / "caso.conf"
    conf.write_text(caso_sample, encoding="utf-8")
    with pytest.raises(MigrationError) as caught:
        caso.migrate(conf, Report())
    assert (caught.value.file, caught.value.section, caught.value.option) == (str(conf), "DEFAULT", "site_name")


def test_a_filled_sample_maps_site_credentials_queue_and_keeps_casos_defaults(caso_site, tmp_path: Path):
    conf = caso_site({("DEFAULT", "projects"): "p-one,p-two", ("DEFAULT", "region_name"): "RegionTwo",
                      ("DEFAULT", "service_name"): "TEST-SITE-cloud", ("ssm", "max_size"): "250"})
    report = Report()
    result = caso.migrate(conf, report)
    assert result.shared["site"] == {"name": "TEST-SITE", "service_name": "TEST-SITE-cloud"}
    openstack = result.shared["cloud"]["openstack"]
    assert openstack["auth_url"] == "https://keystone.test.example.org:5000/v3"
    assert openstack["password"] == "caso-secret" and openstack["region"] == "RegionTwo"
    assert openstack["system_scope"] is True  # cASO scoped itself; we need one scope
    assert result.shared["cloud"]["vo_property"] == "VO"  # cASO's default, not our egi.VO
    accounting = result.sections["accounting"]
    assert accounting["queue_dir"] == str(tmp_path / "outgoing")
    assert accounting["projects"] == ["p-one", "p-two"]
    assert accounting["max_records_per_message"] == 250
    # cASO's default extractors nova,cinder,neutron: cloud and storage (on a queue of its own); ip not mapped
    assert accounting["record_types"] == ["cloud", "storage"]
    assert accounting["storage_queue_dir"] == str(tmp_path / "outgoing") + "-storage"
    keys = report.mapped_keys()
    assert keys["[DEFAULT] site_name"] == "site.name"
    assert keys["[keystone_auth] auth_url"] == "cloud.openstack.auth_url"
    assert keys["[ssm] output_path"] == "accounting.queue_dir"
    assert any(m.new == "cloud.openstack.password" and m.value == "********" for m in report.mapped)
    assert "caso-secret" not in report.render()
    assert any("record type ip" in name for name in report.unmapped_names())
    assert {d.what for d in report.defaults} >= {"[DEFAULT] vo_property -> cloud.vo_property",
                                                "[keystone_auth] scope", "[DEFAULT] caso_tag"}


def test_options_fedcloud_site_does_not_have_are_reported_by_name_with_why(caso_site):
    conf = caso_site({("DEFAULT", "debug"): "true", ("DEFAULT", "caso_tag"): "accounted",
                      ("accelerator", "type_key"): "gpu:type", ("benchmark", "name_key"): "accounting:benchmark_type",
                      ("DEFAULT", "messengers"): "ssm,logstash", ("logstash", "host"): "logs.example.org",
                      ("DEFAULT", "no_such_option"): "1", ("keystone_auth", "user_domain_id"): "a1b2"})
    report = Report()
    caso.migrate(conf, report)
    why = {u.old: u.why for u in report.unmapped}
    assert "oslo.log" in why["[DEFAULT] debug"]
    assert "'accounted'" in why["[DEFAULT] caso_tag"]
    assert "Accelerator:Type" in why["[accelerator] type_key"]
    assert "[benchmark] name_key" not in why  # the same key we read: mapped, not lost
    assert "APEL messages for SSM only" in why["[DEFAULT] messengers: logstash"]
    assert "[logstash] host" in why
    assert "misspelt" in why["[DEFAULT] no_such_option"]
    assert "user_domain_name" in why["[keystone_auth] user_domain_id"]


def test_oslo_substitution_is_applied(caso_site):
    conf = caso_site({("DEFAULT", "service_name"): "$site_name-cloud", ("ssm", "output_path"): "${spooldir}/out"})
    result = caso.migrate(conf, Report())
    assert result.shared["site"]["service_name"] == "TEST-SITE-cloud"
    assert result.sections["accounting"]["queue_dir"].endswith("caso-spool/out")


def test_an_unknown_substitution_names_the_option(caso_site):
    conf = caso_site({("DEFAULT", "service_name"): "$nothing_here"})
    with pytest.raises(MigrationError) as caught:
        caso.migrate(conf, Report())
    assert (caught.value.section, caught.value.option) == ("DEFAULT", "service_name")
    assert "$nothing_here" in caught.value.problem


def test_the_vo_mapping_file_becomes_vos(caso_site, tmp_path: Path, voms_json_sample: str):
    mapping = tmp_path / "voms.json"
    mapping.write_text(voms_json_sample, encoding="utf-8")
    conf = caso_site({("DEFAULT", "mapping_file"): str(mapping)})
    report = Report()
    result = caso.migrate(conf, report)
    assert result.shared["vos"] == {"VO 1": {"projects": ["tenant 1"]}, "VO 2": {"projects": ["tenant 2"]}}
    newer = tmp_path / "voms-new.json"
    newer.write_text(json.dumps({"fedcloud.egi.eu": {"projects": ["a", "b"], "tenant": "b"}}), encoding="utf-8")
    conf = caso_site({("DEFAULT", "mapping_file"): str(newer)}, name="caso2.conf")
    assert caso.migrate(conf, Report()).shared["vos"] == {"fedcloud.egi.eu": {"projects": ["a", "b"]}}


@pytest.mark.parametrize("content, where", [
    ("{not json", (None, None)),
    ('["a list"]', (None, None)),
    ('{"vo": "p1"}', ("vo", None)),
    ('{"vo": {"projects": "p1"}}', ("vo", "projects")),
    ('{"vo": {"tenant": 7}}', ("vo", "tenant")),
])
def test_a_broken_vo_mapping_file_is_a_named_error(caso_site, tmp_path: Path, content: str, where):
    mapping = tmp_path / "voms.json"
    mapping.write_text(content, encoding="utf-8")
    conf = caso_site({("DEFAULT", "mapping_file"): str(mapping)})
    with pytest.raises(MigrationError) as caught:
        caso.migrate(conf, Report())
    assert caught.value.file == str(mapping)
    assert (caught.value.section, caught.value.option) == where


@pytest.mark.parametrize("written, expected", [
    ("2026-11-05 06:00:01+00:00", "2026-11-05T06:00:00+00:00"),  # str(extract_to + 1 s), aware (cASO 5)
    ("2026-11-05 06:00:01.734210+00:00", "2026-11-05T06:00:00+00:00"),  # extract_to = now: microseconds
    ("2026-11-05 06:00:01", "2026-11-05T06:00:00+00:00"),  # naive (older cASO): UTC
    ("2026-11-05T07:00:01+01:00", "2026-11-05T06:00:00+00:00"),
    ("2026-11-01 00:00:00+00:00", "2026-10-31T23:59:59+00:00"),
])
def test_lastrun_becomes_extract_to(tmp_path: Path, written: str, expected: str):
    path = tmp_path / "lastrun.p1"
    path.write_text(written, encoding="utf-8")
    assert caso.extracted_to(caso.parse_lastrun(path)).isoformat() == expected


@pytest.mark.parametrize("content", ["", "yesterday", "2026-13-01", "\x00\xff"])
def test_a_broken_lastrun_file_is_a_named_error(tmp_path: Path, content: str):
    path = tmp_path / "lastrun.p1"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(MigrationError) as caught:
        caso.parse_lastrun(path)
    assert caught.value.file == str(path)


def test_lastrun_files_become_our_state_and_their_projects_are_accounted(caso_site, site_dir: Path, tmp_path: Path):
    spool = tmp_path / "caso-spool"
    spool.mkdir()
    (spool / "lastrun.aaa111").write_text("2026-11-05 06:00:01+00:00", encoding="utf-8")
    (spool / "lastrun.bbb222").write_text("2026-11-05 06:00:01.5+00:00", encoding="utf-8")
    (spool / "caso.lock").write_text("", encoding="utf-8")
    conf = caso_site({("DEFAULT", "projects"): "aaa111"})
    report = migrate([("caso", conf)], site_dir / "fedcloud-site.yaml", None, dry_run=False, force=False)
    store = StateStore(tmp_path / "state")
    for project in ("aaa111", "bbb222"):
        state = store.load(project)
        assert state is not None
        assert state.extracted_to == datetime(2026, 11, 5, 6, 0, 0, tzinfo=timezone.utc)
    fragment = read_back(site_dir / "conf.d" / "60-migrated-caso.yaml")
    assert fragment is not None and fragment["accounting"]["projects"] == ["aaa111", "bbb222"]
    assert len([line for line in report.state if "lastrun." in line]) == 2


def test_our_existing_state_is_kept_unless_forced(caso_site, site_dir: Path, tmp_path: Path):
    spool = tmp_path / "caso-spool"
    spool.mkdir()
    (spool / "lastrun.aaa111").write_text("2026-11-05 06:00:01+00:00", encoding="utf-8")
    store = StateStore(tmp_path / "state")
    ours = datetime(2026, 11, 4, tzinfo=timezone.utc)
    store.save("aaa111", ours)
    conf = caso_site({})
    report = migrate([("caso", conf)], site_dir / "fedcloud-site.yaml", None, dry_run=False, force=False)
    assert store.load("aaa111").extracted_to == ours  # type: ignore[union-attr]
    assert any("kept fedcloud-site's state" in line for line in report.state)
    migrate([("caso", conf)], site_dir / "fedcloud-site.yaml", None, dry_run=False, force=True)
    assert store.load("aaa111").extracted_to == datetime(2026, 11, 5, 6, tzinfo=timezone.utc)  # type: ignore


def test_a_broken_lastrun_file_stops_the_migration_before_anything_is_written(caso_site, site_dir: Path,
                                                                              tmp_path: Path):
    spool = tmp_path / "caso-spool"
    spool.mkdir()
    (spool / "lastrun.aaa111").write_text("not a date", encoding="utf-8")
    with pytest.raises(MigrationError) as caught:
        migrate([("caso", caso_site({}))], site_dir / "fedcloud-site.yaml", None, dry_run=False, force=False)
    assert caught.value.file == str(spool / "lastrun.aaa111")
    assert list((site_dir / "conf.d").iterdir()) == []


def test_the_roll_back_of_the_guide_gives_cASO_back_its_own_lastrun(caso_site, site_dir: Path, tmp_path: Path):
    """docs/migration.rst's roll-back snippet, run on the state the migration wrote, writes the lastrun files
    cASO wrote (same text, the format of cASO's write_lastrun)."""
    spool = tmp_path / "caso-spool"
    spool.mkdir()
    written = "2026-11-05 06:00:01+00:00"  # str(extract_to + timedelta(seconds=1)), extract_to aware UTC
    (spool / "lastrun.aaa111").write_text(written, encoding="utf-8")
    migrate([("caso", caso_site({}))], site_dir / "fedcloud-site.yaml", None, dry_run=False, force=False)
    (spool / "lastrun.aaa111").unlink()
    guide = (Path(__file__).resolve().parents[2] / "docs" / "migration.rst").read_text(encoding="utf-8")
    snippet = guide.split("python3 - <<'EOF'\n", 1)[1].split("EOF\n", 1)[0]
    code = "\n".join(line[7:] for line in snippet.splitlines())
    code = code.replace("/var/lib/fedcloud-site/accounting", str(tmp_path / "state")).replace(
        "/var/spool/caso", str(spool))
    exec(compile(code, "docs/migration.rst", "exec"), {})  # noqa: S102 - the guide's own snippet
    assert (spool / "lastrun.aaa111").read_text(encoding="utf-8") == written


def test_hostile_state_and_mapping_files_are_named_errors(caso_site, tmp_path: Path):
    spool = tmp_path / "caso-spool"
    spool.mkdir()
    os.mkfifo(spool / "lastrun.fifo")  # would block a reader forever
    with pytest.raises(MigrationError, match="not a regular file") as caught:
        caso.migrate(caso_site({}), Report())
    assert caught.value.file == str(spool / "lastrun.fifo")
    (spool / "lastrun.fifo").unlink()
    mapping = tmp_path / "voms.json"
    mapping.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(MigrationError) as caught:
        caso.migrate(caso_site({("DEFAULT", "mapping_file"): str(mapping)}), Report())
    assert caught.value.file == str(mapping)
