"""The offline demo's accounting chain: ``fedcloud_site.demo.pki`` credentials, the ``fedcloud_site.demo.ams``
command line and the demo configuration's ``ssm`` section (records -> queue -> signed -> delivered over HTTPS
-> queue empty).

The demo configuration is copied into tmp_path (so ``../../demo-output`` lands there) with its fixed AMS port
replaced by the simulator's ephemeral one."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from fedcloud_site import smime
from fedcloud_site.x509 import load_certificate, subject_dn

REPO = Path(__file__).resolve().parents[2]


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedcloud_site.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    out = tmp_path / "demo-output" / "pki"
    made = subprocess.run([sys.executable, "-m", "fedcloud_site.demo.pki", str(out), "--qemu-img", ""],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    return out


@pytest.fixture
def ams(pki: Path, tmp_path: Path) -> Iterator[tuple]:
    """The simulator started as scripts/demo.sh starts it, on an ephemeral port: (process, port, store)."""
    store = tmp_path / "demo-output" / "ams-received"
    process = subprocess.Popen(
        [sys.executable, "-m", "fedcloud_site.demo.ams", "--port", "0",
         "--cert", str(pki / "ams" / "servercert.pem"), "--key", str(pki / "ams" / "serverkey.pem"),
         "--token", (pki / "ams" / "token").read_text().strip(), "--project", "accounting",
         "--topic", "eu-egi-cloud-accounting", "--topic", "eu-egi-storage-accounting",
         "--topic", "demo-ip-records", "--topic", "demo-accelerator-records", "--store", str(store),
         "--client-ca", str(pki / "ca.pem"), "--bind-cert", str(pki / "host" / "hostcert.pem")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the process prints it once serving (or exits)
        match = re.search(r"serving https://127\.0\.0\.1:(\d+) ", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        yield process, int(match.group(1)), store
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


@pytest.fixture
def demo(tmp_path: Path, ams: tuple) -> Path:
    etc = tmp_path / "etc" / "fedcloud-site"
    shutil.copytree(REPO / "etc" / "fedcloud-site", etc)
    config = etc / "demo.yaml"
    config.write_text(config.read_text().replace("18443", str(ams[1])))
    return config


def test_the_demo_ssm_signs_the_accounting_records_and_delivers_them_to_the_simulator_until_the_queue_is_empty(
        demo, ams, pki):
    process, _, store = ams
    assert cli(demo, "accounting", "once").returncode == 0
    queued = json.loads(cli(demo, "ssm", "status", "--json").stdout)["messages"]
    assert queued > 0
    sent = cli(demo, "ssm", "once")
    assert sent.returncode == 0, sent.stderr
    delivered = sorted(store.glob("accounting/*/*.msg"))
    assert len(delivered) == queued
    topics = {path.parent.name for path in delivered}  # each record type on its own topic
    assert topics == {"eu-egi-cloud-accounting", "eu-egi-storage-accounting", "demo-ip-records",
                      "demo-accelerator-records"}
    cloud = sorted(store.glob("accounting/eu-egi-cloud-accounting/*.msg"))
    first = cloud[0].read_bytes()
    assert b"multipart/signed" in first.split(b"\n\n", 1)[0]
    verified = smime.verify(first)
    assert verified.content.startswith(b"APEL-cloud-message:")
    assert subject_dn(verified.signer) == subject_dn(load_certificate(pki / "host" / "hostcert.pem"))
    attributes = json.loads(cloud[0].with_suffix(".json").read_text())["attributes"]
    assert set(attributes) == {"empaid"}
    status = json.loads(cli(demo, "ssm", "status", "--json").stdout)
    assert (status["messages"], status["rejected"]) == (0, 0)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_the_simulator_refuses_to_start_without_its_certificate(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fedcloud_site.demo.ams", "--port", "0", "--cert", str(tmp_path / "none.pem"),
         "--key", str(tmp_path / "none.key"), "--token", "t", "--topic", "x", "--store", str(tmp_path / "store")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "ams_sim: cannot start:" in result.stderr
