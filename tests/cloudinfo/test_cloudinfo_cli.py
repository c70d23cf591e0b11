"""``fedcloud-site cloudinfo once|render|status`` on the demo configuration (a copy in tmp_path)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "etc" / "fedcloud-site"


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    """The demo configuration copied so that its ../../demo-output lands in tmp_path."""
    target = tmp_path / "etc" / "fedcloud-site"
    shutil.copytree(DEMO_DIR, target)
    return target / "demo.yaml"


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedcloud_site.cli", "--config", str(config), "cloudinfo", *args],
                          capture_output=True, timeout=120, cwd=REPO)


def test_once_on_the_demo_site_fills_the_cache(demo_config, tmp_path):
    result = cli(demo_config, "once")
    assert result.returncode == 0, result.stderr.decode()
    cache = tmp_path / "demo-output" / "cloudinfo" / "cache"
    assert (cache / "cloudinfo.ldif").read_text().startswith("dn: GLUE2GroupID=cloud,o=glue\n")
    assert "run summary" in result.stderr.decode() and "shares=2" in result.stderr.decode()
    status = cli(demo_config, "status")
    assert status.returncode == 0 and json.loads(status.stdout)["published_by_provider"] is True
    provider = cli(demo_config, "provider")
    assert provider.returncode == 0 and provider.stdout == (cache / "cloudinfo.ldif").read_bytes()


def test_render_prints_ldif_or_json_of_the_demo_site_without_touching_the_cache(demo_config, tmp_path):
    ldif = cli(demo_config, "render", "--format", "ldif")
    assert ldif.returncode == 0, ldif.stderr.decode()
    assert ldif.stdout.startswith(b"dn: GLUE2GroupID=cloud,o=glue\n") and b"GLUE2ComputingShare" in ldif.stdout
    rendered = cli(demo_config, "render", "--format", "json")
    document = json.loads(rendered.stdout)
    assert [s["ProjectID"] for s in document["Share"]] == ["7c9e2b4a6d8f4a1c9e3b5d7f9a2c4e6b",
                                                           "3a1f0c2e9d7b4e7f8a6b5c4d3e2f1a0b"]
    assert not (tmp_path / "demo-output" / "cloudinfo" / "cache" / "cloudinfo.ldif").exists()


def test_status_says_when_nothing_is_published(demo_config):
    status = cli(demo_config, "status")
    assert status.returncode == 1 and json.loads(status.stdout)["published_by_provider"] is False
