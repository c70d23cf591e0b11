"""Fixtures of the accounting tests (shared helpers live in accounting_support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import pytest
import yaml
from accounting_support import GOLDEN_SITE, AccountingSite

from fedcloud_testing.opennebula import OpenNebulaSimulator, attribute_name
from fedcloud_testing.openstack import ADMIN_PASSWORD, ADMIN_PROJECT, ADMIN_USER, OpenStackSim


@pytest.fixture
def golden_site_data() -> Dict[str, Any]:
    return yaml.safe_load(GOLDEN_SITE.read_text(encoding="utf-8"))


@pytest.fixture
def make_site(tmp_path: Path):
    """``make_site(site_dict, overrides=None, name="site", site_format="yaml")`` -> AccountingSite in tmp_path."""

    def _make(site: Dict[str, Any], overrides: Optional[Dict[str, Any]] = None, name: str = "site",
              site_format: str = "yaml") -> AccountingSite:
        return AccountingSite(tmp_path / name, site, overrides, site_format)

    return _make


@pytest.fixture
def simulated(make_site):
    """``simulated("openstack"|"opennebula", data, overrides, name)`` -> (AccountingSite, simulator)."""
    sims = []

    def start(kind, data, overrides=None, name="sim", **backend):
        if kind == "openstack":
            sim = OpenStackSim(data).start()
            cloud = {"backend": "openstack", "openstack": dict(
                auth_url=sim.auth_url, username=ADMIN_USER, password=ADMIN_PASSWORD, project_name=ADMIN_PROJECT,
                retry_delay=0.01, **backend)}
            ignore = ["admin"]
        else:
            sim = OpenNebulaSimulator(data).start()
            user = next(u for u in sim.cloud.users.values() if 0 in u.groups)
            cloud = {"backend": "opennebula", "opennebula": dict(
                endpoint=sim.url, username=user.name, password=user.password, poll_interval=0.01,
                vo_attribute=attribute_name("egi.VO"), **backend)}
            ignore = ["admin", "oneadmin", "users"]
        sims.append(sim)
        settings = {"cloud": cloud, "accounting": {"ignore_projects": ignore}}
        for key, value in (overrides or {}).items():
            settings.setdefault(key, {}).update(value)
        return make_site({}, settings, name), sim

    yield start
    for sim in sims:
        sim.stop()
