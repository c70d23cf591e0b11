"""cloud-info-provider's site file -> site, vos and the pinned GLUE IDs."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcloud_site.migrate import cloudinfo
from fedcloud_site.migrate.errors import MigrationError
from fedcloud_site.migrate.report import Report
from fedcloud_testing.cip import site_file

ENDPOINT = "https://keystone.test.example.org:5000/v3"


def test_the_site_file_maps_identity_and_keeps_the_published_ids(tmp_path: Path):
    path = site_file(tmp_path / "site.yaml", "TEST-SITE", ENDPOINT, {"fedcloud.egi.eu": "p1", "vo.access.egi.eu": "p2"})
    report = Report()
    result = cloudinfo.migrate(path, report, gocdb_service_id="1234G0")
    assert result.shared["site"] == {"name": "TEST-SITE", "endpoint": ENDPOINT, "gocdb_service_id": "1234G0"}
    assert result.shared["vos"] == {"fedcloud.egi.eu": {"projects": ["p1"]}, "vo.access.egi.eu": {"projects": ["p2"]}}
    section = result.sections["cloudinfo"]
    assert section["service_id"] == f"{ENDPOINT}_cloud.compute"
    assert section["endpoint"]["id"] == f"{ENDPOINT}_OpenStack_v3"
    assert section["ams"] == {"enabled": True}


def test_without_the_gocdb_service_id_the_ams_topic_is_reported_unmapped(tmp_path: Path):
    path = site_file(tmp_path / "site.yaml", "TEST-SITE", ENDPOINT, {"fedcloud.egi.eu": "p1"})
    report = Report()
    result = cloudinfo.migrate(path, report)
    assert "ams" not in result.sections["cloudinfo"]
    assert any("AMS topic" in name for name in report.unmapped_names())


@pytest.mark.parametrize("text, section, option", [
    ("endpoint: https://x\nvos: []\n", "site file", "gocdb"),
    ("gocdb: S\nendpoint: 5\n", "site file", "endpoint"),
    ("gocdb: S\nendpoint: https://x\nvos: {a: b}\n", "site file", "vos"),
    ("gocdb: S\nendpoint: https://x\nvos: [{name: v}]\n", "vos[0]", "auth"),
    ("gocdb: S\nendpoint: https://x\nvos: [{name: v, auth: {project_name: p}}]\n", "vos[0].auth", "project_id"),
    ("site: {name: S}\ncompute: {}\n", "site", None),
])
def test_a_malformed_site_file_is_a_named_error(tmp_path: Path, text: str, section, option):
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MigrationError) as caught:
        cloudinfo.migrate(path, Report())
    assert (caught.value.file, caught.value.section, caught.value.option) == (str(path), section, option)


def test_invalid_yaml_names_the_line(tmp_path: Path):
    path = tmp_path / "site.yaml"
    path.write_text("gocdb: S\nendpoint: [unclosed\n", encoding="utf-8")
    with pytest.raises(MigrationError, match=r"invalid YAML: line \d+"):
        cloudinfo.migrate(path, Report())


def _argument_file(tmp_path: Path, *extra: str) -> Path:
    """The options sites give cloud-info-provider-service (as fedcloud_testing.cip runs it), one per line:
    argparse's @file format, which cloud-info-provider reads (fromfile_prefix_chars='@')."""
    site_file(tmp_path / "site.yaml", "TEST-SITE", ENDPOINT, {"fedcloud.egi.eu": "p1"})
    args = ["--os-auth-url", ENDPOINT, "--os-auth-type", "password", "--os-username", "cloudinfo-reader",
            "--os-password", "reader-secret", "--os-user-domain-name", "Default", "--os-project-domain-name",
            "Default", "--timeout", "60", *extra, "site.yaml"]
    path = tmp_path / "cloud-info-provider.args"
    path.write_text("\n".join(args) + "\n", encoding="utf-8")
    return path


def test_the_argument_file_gives_credentials_and_publishing_choices(tmp_path: Path):
    report = Report()
    result = cloudinfo.migrate(_argument_file(tmp_path, "--only-appdb-images", "--select-flavors=public"), report)
    assert result.shared["cloud"]["openstack"] == {
        "auth_url": ENDPOINT, "username": "cloudinfo-reader", "password": "reader-secret",
        "user_domain_name": "Default", "project_domain_name": "Default", "system_scope": True}
    assert result.shared["site"]["name"] == "TEST-SITE"  # the site file named in the arguments
    assert result.sections["cloudinfo"]["images"] == "registry"
    assert result.sections["cloudinfo"]["flavors"] == "public"
    assert "reader-secret" not in report.render()
    assert "--timeout" in report.unmapped_names()


def test_without_only_appdb_images_every_image_stays_published(tmp_path: Path):
    result = cloudinfo.migrate(_argument_file(tmp_path), Report())
    assert result.sections["cloudinfo"]["images"] == "all"


@pytest.mark.parametrize("extra, option", [(("--os-auth-type", "v3oidcaccesstoken"), "--os-auth-type"),
                                           (("--insecure=yes",), "--insecure"),
                                           (("--select-flavors", "some"), "--select-flavors"),
                                           (("other.yaml",), "site_config")])
def test_a_bad_argument_is_a_named_error(tmp_path: Path, extra, option):
    with pytest.raises(MigrationError) as caught:
        cloudinfo.migrate(_argument_file(tmp_path, *extra), Report())
    assert (caught.value.section, caught.value.option) == ("arguments", option)
