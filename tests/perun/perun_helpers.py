"""Helpers of the Perun synchroniser tests: a static-backend site, propagation files, a test PKI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from fedcloud_site import cli
from fedcloud_site.cloud import open_backend
from fedcloud_site.cloud.base import User
from fedcloud_site.config import load_config
from fedcloud_site.demo.ca import CertificateAuthority

REPO = Path(__file__).resolve().parents[2]
ALPHA, BETA, GAMMA = "vo.alpha.eu", "vo.beta.eu", "vo.gamma.eu"
T0 = datetime(2026, 1, 10, 12, 0, tzinfo=timezone.utc)

SITE = {
    "groups": [{"id": "0", "name": "oneadmin"}, {"id": "100", "name": ALPHA}, {"id": "101", "name": BETA}],
    "users": [
        {"id": "u-oneadmin", "name": "oneadmin", "groups": ["0"]},
        # a local account in a VO group that fedcloud-site does not manage
        {"id": "u-local", "name": "localuser", "groups": ["100"], "email": "local@site.example"},
        # a service account marked as managed by mistake: protected by name
        {"id": "u-svc", "name": "serveradmin", "groups": ["0"], "properties": {"FEDCLOUD_SITE_MANAGED": "yes"}},
    ],
}


def member(user_id: str, vo: str = ALPHA, status: str = "VALID", email: Optional[str] = "default",
           dns: Optional[Sequence[str]] = None, keys: Sequence[str] = (), name: Optional[str] = None,
           more: Sequence[Dict[str, Any]] = (), banned: bool = False) -> Dict[str, Any]:
    """One user record of the JSON propagation format."""
    local = user_id.split("@")[0]
    return {"id": user_id, "display_name": name or local.title(),
            "email": f"{local}@example.org" if email == "default" else email,
            "x509_dns": list(dns) if dns is not None else [f"/DC=org/DC=example/CN={local}"],
            "ssh_keys": list(keys),
            "memberships": [{"vo": vo, "status": status, "roles": ["member"]}, *more],
            "banned": banned}


def _done_actions(progress: Path) -> int:
    """How many actions the journal's progress file marks done."""
    try:
        return progress.read_text().count('"done"')
    except FileNotFoundError:
        return 0


class PerunSite:
    """A test site: static backend, config, propagation file; runs ``fedcloud-site perun ...``."""

    def __init__(self, root: Path, capsys: Any) -> None:
        self.root = root
        self.capsys = capsys
        self.config_path = root / "fedcloud-site.yaml"
        self.file = root / "perun.json"
        self.state_dir = root / "perun-state"
        self.site_file = root / "site.yaml"
        self.site: Dict[str, Any] = json.loads(json.dumps(SITE))
        self.perun: Dict[str, Any] = {"state_dir": "perun-state", "file": "perun.json", "grace_period": "7d",
                                      "vos": {ALPHA: {"quota": {"instances": 4, "cores": 8}}, BETA: {}}}
        self.vos: Dict[str, Any] = {ALPHA: {}, BETA: {}}
        self.cloud: Dict[str, Any] = {"backend": "static",
                                      "static": {"site_file": "site.yaml", "state_file": "cloud.json"}}
        self.generated = T0
        self.write_site()
        self.configure()

    def write_site(self) -> None:
        self.site_file.write_text(yaml.safe_dump(self.site), encoding="utf-8")

    def configure(self, **perun: Any) -> Path:
        self.perun.update(perun)
        config = {"site": {"name": "TEST-SITE"},
                  "cloud": self.cloud,
                  "vos": self.vos, "logging": {"level": "debug"}, "perun": self.perun}
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return self.config_path

    def push(self, users: List[Dict[str, Any]], vos: Sequence[str] = (ALPHA, BETA),
             generated_at: Optional[datetime] = None, path: Optional[Path] = None) -> Path:
        """Write a JSON propagation file, ``generated_at`` one minute later than the previous one."""
        if generated_at is None:
            self.generated = self.generated + timedelta(minutes=1)
            generated_at = self.generated
        doc = {"version": "1.0.0", "facility": "test-cloud", "generated_at": generated_at.isoformat(),
               "vos": list(vos), "users": users}
        target = path or self.file
        target.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        return target

    def run(self, *args: str) -> int:
        self.capsys.readouterr()
        return cli.main(["--config", str(self.config_path), "perun", *args])

    def kill_during_apply(self, done: int) -> None:
        """Run ``perun once`` in a child process and SIGKILL it once ``done`` journal actions are done."""
        progress = self.state_dir / "journal.progress"
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.Popen([sys.executable, "-m", "fedcloud_site.cli", "--config", str(self.config_path),
                                 "perun", "once"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while _done_actions(progress) < done and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.005)
            assert proc.poll() is None, "the apply finished before it could be interrupted"
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)

    def output(self) -> str:
        captured = self.capsys.readouterr()
        return captured.out + captured.err

    def users(self) -> Dict[str, User]:
        backend = open_backend(load_config(self.config_path))
        return {u.name: u for u in backend.list_users()}

    def state(self) -> Dict[str, Any]:
        return json.loads((self.state_dir / "perun-state.json").read_text())

    def save_state(self, data: Dict[str, Any]) -> None:
        (self.state_dir / "perun-state.json").write_text(json.dumps(data))

    def audit(self) -> List[Dict[str, Any]]:
        path = self.state_dir / "audit.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


class PKI:
    def __init__(self, directory: Path) -> None:
        self.ca = CertificateAuthority("/DC=org/DC=example/CN=Perun Test CA")
        self.ca_file = self.ca.write_cert(directory / "ca.pem")
        self.server = self.ca.server().write(directory / "server", "cert.pem", "key.pem")
        self.client_dn = "/DC=org/DC=example/CN=cloud.site.example"
        self.client = self.ca.issue(self.client_dn, profile="host").write(directory / "client", "cert.pem", "key.pem")
        other = CertificateAuthority("/DC=org/DC=other/CN=Untrusted CA")
        self.untrusted = other.issue(self.client_dn, profile="host").write(directory / "bad", "cert.pem", "key.pem")
