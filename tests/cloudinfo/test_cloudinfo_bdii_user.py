"""The real ``bdii-update`` as the BDII's own unprivileged user, through the packaged LDAP tool wrapper.

A BDII runs ``bdii-update`` as its own user (``BDII_USER``: ``openldap`` or ``ldap``), who can run
neither a virtual environment's nor pyenv's Python in root's home.  The packaged
``ldap-legacy-options`` wrapper is POSIX sh, so with its ``bdii-ldap-tools`` directory first on PATH
(as docs/cloudinfo.rst tells operators to set it) that user's bdii-update reaches slapd with the
OpenLDAP 2.5 tools.  The test publishes the LDIF our renderer wrote for the test site through a
provider and reads every entry back with ldap3.

Runs as root (to switch user); needs the Debian packages bdii, slapd, ldap-utils and glue-schema.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from base64 import b64decode
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from cloudinfo_helpers import build, ldif_of
from ldap3 import SUBTREE

from fedcloud_site.config import Config
from fedcloud_testing.ldap import SlapdServer, legacy_ldap_tools, root_entry_ldif, slapd_available

BDII_UPDATE = Path("/usr/sbin/bdii-update")
BASE = "GLUE2GroupID=cloud,o=glue"
#: the BDII's user on Debian (slapd's ``openldap``) and on RHEL (``ldap``)
BDII_USERS = ("openldap", "ldap")

pytestmark = [pytest.mark.services, pytest.mark.slow]

Entry = Dict[str, List[str]]


def parse_ldif(text: str) -> Dict[Tuple[str, str], Entry]:
    """Entries of an LDIF text keyed by (RDN attribute, its value), attributes lower-cased; folded and
    base64 lines decoded.  Keys come from the parsed attributes, never from the DN string."""
    entries: Dict[Tuple[str, str], Entry] = {}
    for block in text.replace("\n ", "").split("\n\n"):
        attrs: Entry = {}
        rdn_attribute = ""
        for line in block.splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.partition(":")
            value = b64decode(value[1:].strip()).decode("utf-8") if value.startswith(":") else value.strip()
            if name.lower() == "dn":
                rdn_attribute = value.split("=", 1)[0].lower()
                continue
            attrs.setdefault(name.lower(), []).append(value)
        if attrs:
            entries[(rdn_attribute, attrs[rdn_attribute][0])] = attrs
    return entries


def published(server: SlapdServer) -> Dict[Tuple[str, str], Entry]:
    conn = server.connection()
    conn.search(BASE, "(objectClass=*)", SUBTREE, attributes=["*"])
    entries: Dict[Tuple[str, str], Entry] = {}
    for entry in conn.entries:
        rdn_attribute = entry.entry_dn.split("=", 1)[0].lower()
        attrs = {name.lower(): [str(v) for v in values] for name, values in entry.entry_attributes_as_dict.items()}
        entries[(rdn_attribute, attrs[rdn_attribute][0])] = attrs
    return entries


def wait_for(condition, timeout: float, what) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting until {what()}")


@pytest.fixture
def bdii_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("runs bdii-update as the BDII's user: needs root to switch to it")
    for name in BDII_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.skip(f"none of the BDII users {', '.join(BDII_USERS)} exists (Debian's slapd creates openldap)")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the BDII user can enter (pytest's tmp_path is root's only)."""
    path = Path(tempfile.mkdtemp(prefix="fedcloud-site-bdii-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_bdii_update_as_the_bdii_user_publishes_our_ldif_through_the_packaged_wrapper(
        tmp_path, site_config: Config, bdii_user, shared_dir):
    missing = slapd_available(("GLUE20.schema", "BDII.schema"))
    if missing or not BDII_UPDATE.exists():
        pytest.skip(f"needs the Debian packages bdii, slapd, ldap-utils and glue-schema (missing: "
                    f"{missing or BDII_UPDATE})")
    ldif = ldif_of(build(site_config))
    expected = parse_ldif(ldif)
    assert len(expected) > 10

    server = SlapdServer(tmp_path / "slapd", suffixes=("o=glue", "o=infosys")).start()
    pid_file = shared_dir / "run" / "bdii-update.pid"
    log_file = shared_dir / "log" / "bdii-update.log"
    try:
        dirs = {name: shared_dir / name for name in ("ldif", "provider", "plugin", "var", "run", "log")}
        for directory in dirs.values():
            directory.mkdir()
        (dirs["var"] / "archive").mkdir()
        for name in ("var", "run", "log"):  # what the BDII user writes (password files, state, log)
            for path in (dirs[name], *dirs[name].rglob("*")):
                os.chown(path, bdii_user.pw_uid, bdii_user.pw_gid)
        (dirs["ldif"] / "glue-root.ldif").write_text(root_entry_ldif("o=glue"))
        (shared_dir / "cloudinfo.ldif").write_text(ldif)
        provider = dirs["provider"] / "fedcloud-site-cloudinfo"
        provider.write_text(f"#!/bin/sh\nexec cat {shared_dir / 'cloudinfo.ldif'}\n")
        provider.chmod(0o755)
        slapd_conf = shared_dir / "slapd.conf"  # bdii-update reads the root DNs and passwords from it
        shutil.copyfile(server.conf, slapd_conf)  # type: ignore[arg-type]
        os.chown(slapd_conf, 0, bdii_user.pw_gid)
        slapd_conf.chmod(0o640)
        conf = shared_dir / "bdii.conf"
        conf.write_text("\n".join([
            f"BDII_LOG_FILE={log_file}", f"BDII_PID_FILE={pid_file}", "BDII_LOG_LEVEL=INFO",
            f"BDII_LDIF_DIR={dirs['ldif']}", f"BDII_PROVIDER_DIR={dirs['provider']}",
            f"BDII_PLUGIN_DIR={dirs['plugin']}", f"BDII_PORT={server.port}", "BDII_BREATHE_TIME=1",
            "BDII_READ_TIMEOUT=60", "BDII_ARCHIVE_SIZE=0", "BDII_DELETE_DELAY=0", f"BDII_VAR_DIR={dirs['var']}",
            f"BDII_RUN_DIR={dirs['run']}", "BDII_HOSTNAME=127.0.0.1", f"SLAPD_CONF={slapd_conf}", ""]))
        wrappers = legacy_ldap_tools(shared_dir / "bdii-ldap-tools")
        assert wrappers is not None
        # whatever umask an earlier test left this process: the BDII user reads (and runs) these
        for path in (dirs["ldif"], dirs["provider"], dirs["plugin"], wrappers, *dirs["ldif"].iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        (shared_dir / "cloudinfo.ldif").chmod(0o644)
        conf.chmod(0o644)
        # the environment the documented bdii.service drop-in gives: the wrappers first, then the system's
        env = {"PATH": f"{wrappers}:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
               "HOME": bdii_user.pw_dir}
        result = subprocess.run(
            ["setpriv", f"--reuid={bdii_user.pw_uid}", f"--regid={bdii_user.pw_gid}", "--clear-groups", "--",
             str(BDII_UPDATE), "-c", str(conf), "-d"],
            env=env, capture_output=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr.decode()

        def log() -> str:
            return log_file.read_text(errors="replace")[-2000:] if log_file.exists() else "(no log yet)"

        wait_for(lambda: len(published(server)) == len(expected), 90,
                 lambda: f"bdii-update published {len(expected)} entries, found {len(published(server))} "
                         f"(log: {log()})")
        assert published(server) == expected
        assert pid_file.stat().st_uid == bdii_user.pw_uid  # it really ran as the BDII user
        assert "FailedAdds: 0" in log() or "FailedAdds" not in log()
    finally:
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        server.stop()
