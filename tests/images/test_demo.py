"""The offline demo: ``fedcloud_site.demo.pki`` makes a signed list that the demo configuration's
``demo`` subscription registers into the static backend (a copy of etc/fedcloud-site in tmp_path, so that its
``../../demo-output`` lands there)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fedcloud_site.cloud import open_backend
from fedcloud_site.config import load_config

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=str(REPO))


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    etc = tmp_path / "etc" / "fedcloud-site"
    shutil.copytree(REPO / "etc" / "fedcloud-site", etc)
    return etc / "demo.yaml"


def images(config: Path, *args: str) -> subprocess.CompletedProcess:
    return run("-m", "fedcloud_site.cli", "--config", str(config), "images", *args)


@pytest.mark.parametrize("qemu_img, disk_format", [("qemu-img", "qcow2"), ("", "raw")])
def test_the_generated_demo_list_is_registered_into_the_static_backend(demo, tmp_path, qemu_img, disk_format):
    if qemu_img and not shutil.which(qemu_img):
        pytest.skip("qemu-img not installed")
    made = run("-m", "fedcloud_site.demo.pki", str(tmp_path / "demo-output" / "pki"),
               "--qemu-img", qemu_img)
    assert made.returncode == 0, made.stderr
    once = images(demo, "once")
    assert once.returncode == 0, once.stderr
    status = images(demo, "status", "--json")
    [row] = json.loads(status.stdout)
    assert (row["subscription"], row["state"], row["reason"]) == ("demo", "registered", None)
    [image] = [i for i in open_backend(load_config(demo)).list_images() if i.id == row["image_id"]]
    assert image.disk_format == disk_format and image.properties["image_list"] == "demo"
    assert "registered" in images(demo, "status").stdout


def test_without_the_generator_the_demo_subscription_fails_with_the_missing_file_then_recovers(demo, tmp_path):
    once = images(demo, "once")
    assert once.returncode == 1
    assert "demo: fetch:" in once.stderr and "pki/image.list: cannot read list" in once.stderr
    [listed] = json.loads(images(demo, "status", "--lists", "--json").stdout)
    assert listed["state"] == "failed" and "No such file or directory" in listed["reason"]
    assert str(tmp_path / "demo-output" / "pki" / "image.list") in listed["reason"]  # normalised path
    made = run("-m", "fedcloud_site.demo.pki", str(tmp_path / "demo-output" / "pki"))
    assert made.returncode == 0, made.stderr
    assert images(demo, "once").returncode == 0
    assert [r["state"] for r in json.loads(images(demo, "status", "--json").stdout)] == ["registered"]


def test_a_second_generator_run_makes_a_newer_list_that_is_accepted(demo, tmp_path):
    out = tmp_path / "demo-output" / "pki"
    assert run("-m", "fedcloud_site.demo.pki", str(out), "--qemu-img", "").returncode == 0
    assert images(demo, "once").returncode == 0
    assert run("-m", "fedcloud_site.demo.pki", str(out), "--qemu-img", "").returncode == 0
    again = images(demo, "once")
    assert again.returncode == 0, again.stderr  # a new CA, a version not older: trusted, not a roll-back
    assert [r["state"] for r in json.loads(images(demo, "status", "--json").stdout)] == ["registered"]
