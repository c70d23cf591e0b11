"""End to end through the real BDII: ``bdii-update`` (Debian ``bdii``) runs our provider hook and fills slapd.

bdii-update is driven with a throw-away bdii.conf: its provider directory holds our hook script, its
LDIF directory the ``o=glue`` root, and it writes into a test slapd serving ``o=glue`` and ``o=infosys``.
Debian's bdii 6.0 still calls the LDAP tools with ``-h``/``-p``, which OpenLDAP 2.5 removed, so PATH
starts with the packaged ``ldap-legacy-options`` wrappers (laid out by
:func:`fedcloud_testing.ldap.legacy_ldap_tools`, as the packages install them).

Needs the Debian packages bdii, slapd, ldap-utils and glue-schema.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest
from cloudinfo_helpers import build, ldif_of, write_site_config
from hostile_model import HOSTILE_FLAVOUR_IDS, HOSTILE_IDS, HOSTILE_NAMES, hostile_model
from ldap3 import SUBTREE
from ldif_reader import as_entries, read_ldif

from fedcloud_site.config import load_config
from fedcloud_site.runner import Runner
from fedcloud_testing.ldap import SlapdServer, legacy_ldap_tools, root_entry_ldif, slapd_available

REPO = Path(__file__).resolve().parents[2]
HOOK = REPO / "etc" / "bdii" / "fedcloud-site-cloudinfo-provider"
BDII_UPDATE = Path("/usr/sbin/bdii-update")
BASE = "GLUE2GroupID=cloud,o=glue"

pytestmark = [pytest.mark.services, pytest.mark.slow]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting until {what}")


def cloud_dns(server: SlapdServer) -> List[str]:
    conn = server.connection()
    conn.search("o=glue", "(objectClass=*)", SUBTREE, attributes=["objectClass"])
    return [e.entry_dn for e in conn.entries if e.entry_dn.lower().endswith(BASE.lower())]


@pytest.fixture
def bdii(tmp_path: Path) -> Iterator[dict]:
    missing = slapd_available(("GLUE20.schema", "BDII.schema"))
    if missing or not BDII_UPDATE.exists():
        pytest.skip(f"needs the Debian packages bdii, slapd, ldap-utils and glue-schema (missing: "
                    f"{missing or BDII_UPDATE})")
    server = SlapdServer(tmp_path / "slapd", suffixes=("o=glue", "o=infosys")).start()
    dirs = {name: tmp_path / "bdii" / name for name in ("ldif", "provider", "plugin", "var", "run")}
    for directory in dirs.values():
        directory.mkdir(parents=True)
    (dirs["var"] / "archive").mkdir()
    (dirs["ldif"] / "glue-root.ldif").write_text(root_entry_ldif("o=glue"))  # what default.ldif gives a BDII
    shutil.copy(HOOK, dirs["provider"] / "fedcloud-site-cloudinfo")
    conf = tmp_path / "bdii" / "bdii.conf"
    conf.write_text("\n".join([
        f"BDII_LOG_FILE={tmp_path / 'bdii' / 'bdii-update.log'}", f"BDII_PID_FILE={dirs['run'] / 'bdii-update.pid'}",
        "BDII_LOG_LEVEL=INFO", f"BDII_LDIF_DIR={dirs['ldif']}", f"BDII_PROVIDER_DIR={dirs['provider']}",
        f"BDII_PLUGIN_DIR={dirs['plugin']}", f"BDII_PORT={server.port}", "BDII_BREATHE_TIME=1",
        "BDII_READ_TIMEOUT=60", "BDII_ARCHIVE_SIZE=0", "BDII_DELETE_DELAY=0", f"BDII_VAR_DIR={dirs['var']}",
        f"BDII_RUN_DIR={dirs['run']}", "BDII_HOSTNAME=127.0.0.1", f"SLAPD_CONF={server.conf}", ""]))
    config_path = write_site_config(tmp_path)
    path = os.environ.get("PATH", "")
    shim = legacy_ldap_tools(tmp_path / "ldap-tools")
    if shim is not None:
        path = f"{shim}:{path}"
    env = dict(os.environ, PATH=path, FEDCLOUD_SITE_CLOUDINFO_CACHE=str(tmp_path / "cache"),
               FEDCLOUD_SITE_PYTHON=sys.executable, PYTHONPATH=str(REPO))
    state = {"server": server, "conf": conf, "env": env, "config": config_path, "cache": tmp_path / "cache",
             "pid_file": dirs["run"] / "bdii-update.pid", "log": tmp_path / "bdii" / "bdii-update.log"}
    yield state
    pid = None
    try:
        pid = int(state["pid_file"].read_text().strip())
    except (OSError, ValueError):
        pass
    if pid is not None:  # the bdii-update daemon this test started
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            pass
    server.stop()


def test_bdii_update_publishes_our_entries_and_ages_them_out_when_the_cache_is_stale(bdii):
    assert Runner("cloudinfo", bdii["config"]).run_once() == 0
    ldif = (bdii["cache"] / "cloudinfo.ldif").read_text()
    expected = ldif.count("\ndn: ") + 1
    result = subprocess.run([str(BDII_UPDATE), "-c", str(bdii["conf"]), "-d"], env=bdii["env"],
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode()
    server = bdii["server"]

    def log() -> str:
        return bdii["log"].read_text(errors="replace") if bdii["log"].exists() else ""

    wait_for(lambda: len(cloud_dns(server)) == expected, 60,
             f"bdii-update added our {expected} entries (log: {log()[-1500:]})")
    conn = server.connection()
    conn.search(BASE, "(objectClass=GLUE2ComputingService)", SUBTREE, attributes=["GLUE2ServiceID"])
    assert [e.GLUE2ServiceID.value for e in conn.entries] == ["https://cloud.test.example.org:5000/v3_cloud.compute"]
    assert "FailedAdds: 0" in log() or "FailedAdds" not in log()

    old = time.time() - 3 * 3600  # older than the default max_cache_age of 2 h
    os.utime(bdii["cache"] / "cloudinfo.ldif", (old, old))
    wait_for(lambda: cloud_dns(server) == [], 60, f"the stale entries aged out (log: {log()[-1500:]})")
    conn = server.connection()
    conn.search("o=glue", "(objectClass=organization)", SUBTREE)
    assert [e.entry_dn for e in conn.entries] == ["o=glue"]  # the BDII's own root stays


def glue_entries(server: SlapdServer):
    """Our subtree as slapd holds it, in the form :func:`ldif_reader.as_entries` gives."""
    conn = server.connection()
    conn.search(BASE, "(objectClass=*)", SUBTREE, attributes=["*"])
    records = [(e.entry_dn, [(attribute, value.decode("utf-8")) for attribute, values in e.entry_raw_attributes.items()
                             for value in values]) for e in conn.entries]
    return as_entries(records)


def test_hostile_names_and_ids_survive_bdii_update_add_modify_and_delete(bdii):
    """A full bdii-update cycle (add, modify, delete) keeps every entry as we rendered it."""
    base = build(load_config(bdii["config"]))
    cache = bdii["cache"]
    cache.mkdir(parents=True, exist_ok=True)
    server = bdii["server"]

    def publish(model) -> dict:
        text = ldif_of(model)
        (cache / "cloudinfo.ldif.tmp").write_text(text, encoding="ascii")
        (cache / "cloudinfo.ldif.tmp").replace(cache / "cloudinfo.ldif")
        return as_entries(read_ldif(text))

    def log() -> str:
        return bdii["log"].read_text(errors="replace")[-3000:] if bdii["log"].exists() else ""

    def wait_until_published(expected: dict, what: str) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            found = glue_entries(server)
            if found == expected:
                return
            time.sleep(0.5)
        missing = sorted(set(expected) - set(found))[:3]
        wrong = [(dn, expected[dn], found[dn]) for dn in expected if dn in found and found[dn] != expected[dn]][:2]
        raise AssertionError(f"{what}: slapd differs after 90 s; missing {missing}; wrong {wrong}; "
                             f"extra {sorted(set(found) - set(expected))[:3]}; log: {log()}")

    first = publish(hostile_model(base))
    assert len(first) > len(HOSTILE_IDS) + len(HOSTILE_FLAVOUR_IDS)
    result = subprocess.run([str(BDII_UPDATE), "-c", str(bdii["conf"]), "-d"], env=bdii["env"],
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode()
    wait_until_published(first, "add")

    renamed = [f"{name} v2 dn: ¿\t" for name in HOSTILE_NAMES[:-2]]  # the last two images go away
    second = publish(hostile_model(base, names=renamed, ids=HOSTILE_IDS[:-2],
                                   flavour_ids=HOSTILE_FLAVOUR_IDS[1:]))
    assert second != first
    wait_until_published(second, "modify and delete of some")

    old = time.time() - 3 * 3600  # stale: the provider prints nothing, bdii-update deletes all of ours
    os.utime(cache / "cloudinfo.ldif", (old, old))
    wait_until_published({}, "delete of all")
