"""cloud-info-provider 1.x (the peer tool) in its own virtualenv, run against the OpenStack simulator.

Tests compare our GLUE 2.1 JSON with its output; the cloudinfo benchmark times it next to ours.
:func:`ensure_venv` installs ``cloud-info-provider==<version>`` from PyPI with pip into a directory
(reused when already there; ``FEDCLOUD_SITE_CIP_VENV`` names a directory to keep between runs).
:func:`run_cip` runs ``cloud-info-provider-service`` against a simulator as a project member,
the way sites run it.  Its GOCDB lookup (a call to goc.egi.eu) is replaced by the answer GOCDB
would give for the site, so that the run only talks to the simulator on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from . import peers
from .peers import PeerUnavailable

CIP_VERSION = "1.2.0"
VENV_ENV = "FEDCLOUD_SITE_CIP_VENV"
MEMBER_USER = "cloudinfo-reader"
MEMBER_PASSWORD = "cloudinfo-reader-secret"
_RUNNER = """\
import sys
import cloud_info_provider.providers.utils as utils
gocdb = {"gocdb_id": sys.argv.pop(1), "site_name": sys.argv.pop(1)}
utils.find_in_gocdb = lambda *args, **kwargs: dict(gocdb)  # what goc.egi.eu answers for this site
from cloud_info_provider.core import main
main()
"""


#: cloud-info-provider cannot be installed because PyPI is unreachable (the message says why)
CipUnavailable = PeerUnavailable


@dataclass
class CipRun:
    stdout: bytes
    stderr: bytes
    returncode: int
    seconds: float
    max_rss_kb: Optional[int]


def ensure_venv(directory: Optional[Path] = None, version: str = CIP_VERSION, timeout: float = 900) -> Path:
    """The Python of a virtualenv with cloud-info-provider ``version`` (created and installed if needed)."""
    if directory is None:
        named = os.environ.get(VENV_ENV)
        if not named:
            raise ValueError(f"give a directory or set {VENV_ENV}")
        directory = Path(named)
    return peers.ensure_venv(directory, f"cloud-info-provider=={version}", timeout=timeout)


def add_member_user(data: Any, project_ids: Sequence[str], private_flavors: Sequence[str] = ()) -> None:
    """A non-admin user with the member role on each VO project (how sites run cloud-info-provider);
    private flavours are opened to those projects so that both tools see the same flavours."""
    user = data.find_user(MEMBER_USER) or data.add_user(MEMBER_USER, password=MEMBER_PASSWORD)
    for project_id in project_ids:
        data.grant(user.id, "member", project_id=project_id)
        for flavor_id in private_flavors:
            data.flavors[flavor_id].access.add(project_id)


def site_file(path: Path, site_name: str, endpoint: str, vos: Mapping[str, str]) -> Path:
    """cloud-info-provider's site YAML (fedcloud-catchall-operations format): VO name -> project id."""
    site = {"gocdb": site_name, "endpoint": endpoint,
            "vos": [{"name": vo, "auth": {"project_id": project}} for vo, project in vos.items()]}
    path.write_text(yaml.safe_dump(site), encoding="utf-8")
    return path


def run_cip(python: Path, auth_url: str, site_yaml: Path, gocdb_id: str, site_name: str, workdir: Path,
            extra_args: Sequence[str] = ("--only-appdb-images",), timeout: float = 600) -> CipRun:
    """Run cloud-info-provider (glue21json to stdout) as the member user; measures time and peak RSS."""
    workdir.mkdir(parents=True, exist_ok=True)
    runner = workdir / "run_cip.py"
    runner.write_text(_RUNNER, encoding="utf-8")
    env: Dict[str, str] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir),
                           "LANG": "C.UTF-8", "NO_PROXY": "*", "no_proxy": "*"}
    argv: List[str] = [str(python), str(runner), gocdb_id, site_name, "--os-auth-url", auth_url,
                       "--os-auth-type", "password", "--os-username", MEMBER_USER, "--os-password", MEMBER_PASSWORD,
                       "--os-user-domain-name", "Default", "--os-project-domain-name", "Default",
                       "--timeout", "60", *extra_args, str(site_yaml)]
    out_path, err_path = workdir / "cip.stdout", workdir / "cip.stderr"
    started = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=str(workdir))
        deadline = started + timeout
        while True:  # wait4 (not communicate) so that the child's peak RSS is known
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.02)
    process.returncode = os.waitstatus_to_exitcode(status)
    return CipRun(stdout=out_path.read_bytes(), stderr=err_path.read_bytes(), returncode=process.returncode,
                  seconds=time.monotonic() - started, max_rss_kb=int(usage.ru_maxrss))
