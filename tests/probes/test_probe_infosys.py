"""``fedcloud-site check infosys``: the LDIF the real cloudinfo daemon rendered, and a real slapd as BDII.

Needs slapd, ldap-utils and glue-schema for the BDII tests (skipped without them).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fedcloud_site import cli
from fedcloud_site.cloudinfo.cache import note_failure
from fedcloud_site.config import load_config
from fedcloud_site.timeutil import utcnow
from fedcloud_testing.ldap import SlapdServer, slapd_available

REPO = Path(__file__).resolve().parents[2]
DEMO_SITE = REPO / "etc" / "fedcloud-site" / "demo-site.yaml"


def _config(site_config, tmp_path: Path) -> Path:
    return site_config(f"""
        cloud:
          backend: static
          static: {{site_file: {DEMO_SITE}, state_file: {tmp_path}/static-state.json}}
        vos:
          fedcloud.egi.eu: {{projects: [3a1f0c2e9d7b4e7f8a6b5c4d3e2f1a0b]}}
        cloudinfo:
          middleware: openstack
          interval: 30m
          max_cache_age: 2h
        """)


@pytest.fixture
def rendered(site_config, tmp_path):
    """A site whose LDIF was rendered by ``fedcloud-site cloudinfo once``."""
    config = _config(site_config, tmp_path)
    assert cli.main(["--config", str(config), "cloudinfo", "once"]) == 0
    return config


def _ldif(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "cloudinfo" / "cloudinfo.ldif"


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_fresh_valid_ldif_is_ok(tmp_path, rendered, probe):
    run = probe(rendered, "infosys")
    assert run.status == "OK", run.line
    assert "1 VO share(s)" in run.text
    assert int(run.perf("ldif_entries").split(";")[0]) >= 5


def test_ldif_older_than_two_refresh_intervals_is_warning(tmp_path, rendered, probe):
    _age(_ldif(tmp_path), 90 * 60)
    run = probe(rendered, "infosys")
    assert run.status == "WARNING", run.line
    assert "LDIF rendered 1h30m ago (warning 1h)" in run.text


def test_ldif_older_than_max_cache_age_is_critical(tmp_path, rendered, probe):
    _age(_ldif(tmp_path), 3 * 3600)
    run = probe(rendered, "infosys")
    assert run.status == "CRITICAL", run.line
    assert "the BDII provider publishes nothing" in run.text


def test_missing_ldif_is_critical(site_config, tmp_path, probe):
    run = probe(_config(site_config, tmp_path), "infosys")
    assert run.status == "CRITICAL"
    assert "has not rendered the site yet" in run.text


def test_broken_ldif_is_critical(tmp_path, rendered, probe):
    with open(_ldif(tmp_path), "ab") as out:
        out.write(b"\ndn: GLUE2ServiceID=x,o=elsewhere\nobjectClass: GLUE2Service\nthis is not ldif\n")
    run = probe(rendered, "infosys")
    assert run.status == "CRITICAL", run.line
    assert "not an LDIF attribute line" in run.text


def test_entries_outside_the_base_are_critical(tmp_path, rendered, probe):
    with open(_ldif(tmp_path), "ab") as out:
        out.write(b"\ndn: GLUE2ServiceID=x,o=elsewhere\nobjectClass: GLUE2Service\n")
    run = probe(rendered, "infosys")
    assert run.status == "CRITICAL"
    assert "GLUE2ServiceID=x,o=elsewhere is not below GLUE2GroupID=cloud,o=glue" in run.text


def test_failed_refresh_keeps_the_last_render_and_warns(tmp_path, rendered, probe):
    # what the daemon records when the cloud cannot be read (the LDIF of the last render stays)
    note_failure(load_config(rendered).section("cloudinfo"), "CloudUnavailable: Keystone: 503", utcnow())
    run = probe(rendered, "infosys")
    assert run.status == "WARNING", run.line
    assert "failed: CloudUnavailable: Keystone: 503 (serving the render of" in run.text


def test_invalid_cloudinfo_settings_are_unknown(site_config, tmp_path, probe):
    config = site_config("cloudinfo: {max_cache_age: never}\n")
    run = probe(config, "infosys")
    assert run.status == "UNKNOWN"
    assert "cloudinfo.max_cache_age" in run.text


@pytest.fixture(scope="module")
def bdii(tmp_path_factory):
    missing = slapd_available(("GLUE20.schema",))
    if missing:
        pytest.skip(f"needs slapd, ldap-utils and glue-schema (missing: {missing})")
    server = SlapdServer(tmp_path_factory.mktemp("probe-slapd"), suffixes=("o=glue",)).start()
    server.add_root_entries()
    yield server
    server.stop()


def test_bdii_publishing_our_service_is_ok(tmp_path, rendered, probe, bdii):
    bdii.delete_subtree("GLUE2GroupID=cloud,o=glue")
    result = bdii.ldapadd(_ldif(tmp_path))
    assert result.returncode == 0, result.stderr
    run = probe(rendered, "infosys", "--bdii", bdii.url)
    assert run.status == "OK", run.line
    assert f"BDII {bdii.url} publishes https://cloud.example.org:5000/v3_cloud.compute" in run.text


def test_bdii_without_our_service_is_critical(tmp_path, rendered, probe, bdii):
    bdii.delete_subtree("GLUE2GroupID=cloud,o=glue")
    run = probe(rendered, "infosys", "--bdii", bdii.url)
    assert run.status == "CRITICAL", run.line
    assert "does not publish service" in run.text
