"""Perun sync onto OpenStack (Keystone users in the VOs' projects) through the OpenStack simulator."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from perun_helpers import ALPHA, BETA, member

from fedcloud_testing.openstack import ADMIN_PASSWORD, OpenStackSim, generate


@pytest.fixture
def os_site(site):
    cloud = generate(seed=3, n_projects=2, vms_per_project=0, now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    with OpenStackSim(cloud) as sim:
        site.cloud = {"backend": "openstack",
                      "openstack": {"auth_url": sim.auth_url, "username": "admin", "password": ADMIN_PASSWORD,
                                    "project_name": "admin", "retries": 0, "timeout": 5}}
        site.vos = {ALPHA: {"group": "project-0"}, BETA: {"group": "project-1"}}
        site.configure()
        site.sim = sim
        yield site


def test_keystone_users_are_created_in_the_vo_projects_and_a_second_run_changes_nothing(os_site):
    os_site.push([member("jane@egi.eu", more=[{"vo": BETA, "status": "VALID"}]), member("bob@egi.eu", vo=BETA)])
    assert os_site.run("once") == 0
    users = os_site.users()
    project0, project1 = (os_site.sim.data.find_project(n).id for n in ("project-0", "project-1"))
    assert set(users["jane@egi.eu"].groups) == {project0, project1}
    assert users["bob@egi.eu"].groups == (project1,)
    assert os_site.run("once") == 0  # Keystone's own marker form is recognised: no update loop
    assert [a["action"] for a in os_site.audit()] == ["create", "create"]
    os_site.push([member("bob@egi.eu", vo=BETA), member("carl@egi.eu")])
    assert os_site.run("sync", "--force") == 0
    jane = os_site.users()["jane@egi.eu"]
    assert not jane.enabled
    assert os_site.users()["admin"].enabled  # the cloud's own accounts are not ours
