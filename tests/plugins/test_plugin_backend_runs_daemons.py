"""A backend installed from its own distribution runs the daemons with no edit outside its package.

The distribution is written to a directory with its ``.dist-info`` (as pip would install it) and put on
``PYTHONPATH`` of real ``fedcloud-site ... once`` processes: accounting writes records labelled with the
plugin's CloudType, cloudinfo publishes its GLUE facts, perun creates users through it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_dist import install_distribution

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "etc" / "fedcloud-site"

PLUGIN = '''
"""A site's own cloud: its API is a YAML file (the static backend's reader), its identity is its own."""
from fedcloud_site.cloud.base import BackendDeclaration, Capability, MiddlewareFacts
from fedcloud_site.cloud.static import StaticBackend


class YardBackend(StaticBackend):
    name = "yard"
    declaration = BackendDeclaration(
        label="Yard Cloud",
        middleware=MiddlewareFacts(api_type="Yard", api_version="v2", interface_name="org.example.yard",
                                   implementor="Yard People", implementation_name="Yard Compute",
                                   semantics="https://yard.example.org/api", product_name="Yard"),
        capabilities=frozenset({Capability.USAGE, Capability.VOLUMES, Capability.FLOATING_IPS, Capability.USERS}),
        protected_users=frozenset({"yardadmin"}))
'''


@pytest.fixture
def yard_site(tmp_path):
    plugin_root = install_distribution(tmp_path / "plugin", "yard-backend", {"yard_backend.py": PLUGIN},
                                       {"fedcloud_site.cloud_backends": {"yard": "yard_backend:YardBackend"}})
    out = tmp_path / "out"
    config = tmp_path / "fedcloud-site.yaml"
    config.write_text(f"""
site: {{name: YARD-SITE, endpoint: 'https://yard.example.org:5000/v3'}}
cloud:
  backend: yard
  yard: {{site_file: {DEMO / 'demo-site.yaml'}, state_file: {out / 'state.json'}}}
vos:
  fedcloud.egi.eu: {{projects: [3a1f0c2e9d7b4e7f8a6b5c4d3e2f1a0b], group: fedcloud.egi.eu}}
  biomed: {{projects: [biomed-cloud], group: biomed}}
accounting: {{state_dir: {out / 'accounting'}, queue_dir: {out / 'outgoing'}, ignore_projects: [admin]}}
cloudinfo: {{state_dir: {out / 'cloudinfo'}, cache_dir: {out / 'cache'}}}
perun:
  state_dir: {out / 'perun'}
  source: file
  file: {DEMO / 'demo-perun.json'}
  vos: {{fedcloud.egi.eu: {{}}, biomed: {{}}}}
""", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin_root), str(REPO)]))
    return config, out, env


def run(config: Path, env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedcloud_site.cli", "--config", str(config), *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_plugin_backend_runs_accounting_cloudinfo_and_perun(yard_site):
    config, out, env = yard_site
    checked = run(config, env, "check-config")
    assert checked.returncode == 0, checked.stderr
    for daemon in ("accounting", "cloudinfo", "perun"):
        done = run(config, env, daemon, "once")
        assert done.returncode == 0, f"{daemon}: {done.stderr[-2000:]}"
    messages = [p.read_text() for p in (out / "outgoing").rglob("*") if p.is_file() and not p.name.endswith(".lck")]
    assert messages and all("CloudType: fedcloud-site/" in m and "(Yard Cloud)" in m for m in messages)
    ldif = "".join(p.read_text() for p in (out / "cache").rglob("*.ldif"))
    assert "GLUE2EndpointInterfaceName: org.example.yard" in ldif
    state = json.loads((out / "state.json").read_text())
    assert state.get("users"), "perun created no user through the plugin backend"


def test_a_plugin_lacking_the_users_capability_is_refused_by_name(yard_site, tmp_path):
    config, out, env = yard_site
    plugin = Path(env["PYTHONPATH"].split(os.pathsep)[0]) / "yard_backend.py"
    plugin.write_text(plugin.read_text().replace(", Capability.USERS", ""), encoding="utf-8")
    checked = run(config, env, "check-config")
    assert checked.returncode == 2
    assert "perun" in checked.stderr and "'users' capability" in checked.stderr
