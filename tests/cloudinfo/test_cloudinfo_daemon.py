"""The daemon job renders into the cache; the BDII provider prints a fresh cache and nothing once stale."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cloudinfo_helpers import write_site_config

from fedcloud_site.cloudinfo.cache import read_status
from fedcloud_site.cloudinfo.daemon import JOB_NAME, jobs
from fedcloud_site.cloudinfo.provider import print_cached_ldif
from fedcloud_site.config import load_config
from fedcloud_site.runner import Runner

REPO = Path(__file__).resolve().parents[2]
HOOK = REPO / "etc" / "bdii" / "fedcloud-site-cloudinfo-provider"


def run_once(config_path: Path, dry_run: bool = False) -> int:
    return Runner("cloudinfo", config_path, dry_run=dry_run).run_once()


def test_the_daemon_has_one_refresh_job_every_30_minutes_by_default(site_config):
    [job] = jobs(site_config)
    assert job.name == JOB_NAME and job.interval == 1800


def test_a_run_writes_ldif_json_and_status_into_the_cache(tmp_path):
    config_path = write_site_config(tmp_path)
    assert run_once(config_path) == 0
    cache = tmp_path / "cache"
    ldif = (cache / "cloudinfo.ldif").read_text()
    assert ldif.startswith("dn: GLUE2GroupID=cloud,o=glue\n")
    document = json.loads((cache / "cloudinfo.json").read_text())
    assert len(document["Share"]) == 2
    status = read_status(cache)
    assert status["last_error"] is None and status["counts"]["shares"] == 2
    assert status["counts"]["ldif_entries"] == ldif.count("\ndn: ") + 1
    assert oct((cache / "cloudinfo.ldif").stat().st_mode & 0o777) == "0o644"  # readable by the BDII user
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_a_dry_run_writes_nothing(tmp_path):
    assert run_once(write_site_config(tmp_path), dry_run=True) == 0
    assert not (tmp_path / "cache" / "cloudinfo.ldif").exists()


def test_an_extra_json_copy_is_written_when_configured(tmp_path):
    copy = tmp_path / "www" / "site.json"
    run_once(write_site_config(tmp_path, cloudinfo_extra=f"  json_file: {copy}"))
    assert copy.read_bytes() == (tmp_path / "cache" / "cloudinfo.json").read_bytes()


def test_the_provider_prints_a_fresh_cache_and_nothing_once_it_is_stale(tmp_path):
    run_once(write_site_config(tmp_path, cloudinfo_extra="  max_cache_age: 1h"))
    cache = tmp_path / "cache"
    out, err = io.BytesIO(), io.StringIO()
    assert print_cached_ldif(cache, out, err=err)
    assert out.getvalue() == (cache / "cloudinfo.ldif").read_bytes()
    old = time.time() - 3601
    os.utime(cache / "cloudinfo.ldif", (old, old))
    out = io.BytesIO()
    assert not print_cached_ldif(cache, out, err=err)  # the limit comes from the daemon's status file
    assert out.getvalue() == b"" and "older than the limit of 3600 s" in err.getvalue()


def test_the_provider_prints_nothing_without_a_cache(tmp_path):
    err = io.StringIO()
    assert not print_cached_ldif(tmp_path / "nothing", io.BytesIO(), err=err)
    assert "does not exist" in err.getvalue()


def test_the_bdii_hook_script_prints_the_cache_without_the_configuration(tmp_path):
    run_once(write_site_config(tmp_path))
    env = dict(os.environ, FEDCLOUD_SITE_CLOUDINFO_CACHE=str(tmp_path / "cache"), FEDCLOUD_SITE_PYTHON=sys.executable,
               PYTHONPATH=str(REPO))
    (tmp_path / "fedcloud-site.yaml").unlink()  # the BDII user may not read the configuration: not needed
    started = time.monotonic()
    result = subprocess.run([str(HOOK)], capture_output=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (tmp_path / "cache" / "cloudinfo.ldif").read_bytes()
    assert time.monotonic() - started < 10


def test_the_provider_command_uses_the_configured_age_limit(tmp_path):
    config_path = write_site_config(tmp_path, cloudinfo_extra="  interval: 5m\n  max_cache_age: 10m")
    run_once(config_path)
    settings = load_config(config_path).section("cloudinfo")
    old = time.time() - 601
    os.utime(settings.ldif_path, (old, old))
    result = subprocess.run([sys.executable, "-m", "fedcloud_site.cli", "--config", str(config_path), "cloudinfo",
                             "provider"], capture_output=True, timeout=60, cwd=REPO)
    assert result.returncode == 1 and result.stdout == b""


def test_an_age_limit_shorter_than_the_interval_is_a_configuration_error(tmp_path):
    import pytest

    from fedcloud_site.config import ConfigError

    with pytest.raises(ConfigError, match="max_cache_age .* must be longer than interval"):
        load_config(write_site_config(tmp_path, cloudinfo_extra="  interval: 3h\n  max_cache_age: 2h"))
