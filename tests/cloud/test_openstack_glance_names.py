"""Image names as Glance takes them: at most 255 characters, long names clipped yet kept apart.

The Glance simulator serves and enforces Glance's image schema, so the real clients (openstacksdk through our
backend, python-glanceclient) meet the limits a real Glance sets.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone

import glanceclient.client
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from fedcloud_site.cloud.base import CloudError, ImageSpec
from fedcloud_site.cloud.openstack import GLANCE_MAX_NAME, OpenStackBackend, OpenStackSettings, glance_image_name
from fedcloud_site.schema import Duration, Secret
from fedcloud_testing.openstack import ADMIN_PASSWORD, OpenStackSim, generate

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def sim():
    with OpenStackSim(generate(seed=4, n_projects=1, vms_per_project=2, now=NOW)) as server:
        yield server


@pytest.fixture
def backend(sim):
    settings = OpenStackSettings(auth_url=sim.auth_url, username="admin", password=Secret(ADMIN_PASSWORD),
                                 project_name="admin", retries=0, retry_delay=Duration(0.01), timeout=Duration(5))
    b = OpenStackBackend(settings)
    yield b
    b.close()


def _token(sim: OpenStackSim) -> str:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "Default"}, "password": ADMIN_PASSWORD}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}
    return requests.post(sim.auth_url + "/auth/tokens", json=body, timeout=5).headers["X-Subject-Token"]


def test_the_simulated_glance_refuses_a_name_over_255_characters_as_glance_does(sim):
    headers = {"X-Auth-Token": _token(sim)}
    too_long = requests.post(sim.url + "/image/v2/images", json={"name": "n" * 256}, headers=headers, timeout=5)
    assert too_long.status_code == 400 and "maxLength" in too_long.text
    fits = requests.post(sim.url + "/image/v2/images", json={"name": "n" * 255}, headers=headers, timeout=5)
    assert fits.status_code == 201
    wrong_type = requests.post(sim.url + "/image/v2/images", json={"name": "x", "min_ram": "512"}, headers=headers,
                               timeout=5)
    assert wrong_type.status_code == 400


def test_the_simulated_glance_serves_the_image_schema_with_its_limits(sim):
    schema = requests.get(sim.url + "/image/v2/schemas/image", headers={"X-Auth-Token": _token(sim)},
                          timeout=5).json()
    assert schema["name"] == "image" and schema["properties"]["name"]["maxLength"] == 255
    assert schema["additionalProperties"] == {"type": "string"}
    assert {link["rel"] for link in schema["links"]} == {"self", "enclosure", "describedby"}


def test_a_300_character_name_is_registered_clipped(backend):
    name = "EGI " + "Very Long Appliance Title " * 12
    assert len(name) > 300
    image = backend.create_image(ImageSpec(name=backend.image_name(name), disk_format="raw"), io.BytesIO(b"x" * 64))
    assert image.status == "active"
    assert len(image.name) == GLANCE_MAX_NAME and image.name.startswith(name[:200])


def test_the_backend_clips_a_long_name_even_when_the_caller_did_not(backend):
    image = backend.create_image(ImageSpec(name="a" * 400, disk_format="raw"), io.BytesIO(b"x"))
    assert len(image.name) == GLANCE_MAX_NAME
    renamed = backend.update_image(image.id, {}, name="b" * 300)
    assert len(renamed.name) == GLANCE_MAX_NAME and renamed.name.startswith("b" * 200)


def test_two_long_names_sharing_their_first_255_characters_stay_distinct(backend):
    common = "c" * 260
    first = backend.create_image(ImageSpec(name=common + " version 1", disk_format="raw"), io.BytesIO(b"1"))
    second = backend.create_image(ImageSpec(name=common + " version 2", disk_format="raw"), io.BytesIO(b"2"))
    assert first.name != second.name


def test_a_property_of_the_wrong_type_is_refused_by_the_simulated_glance(backend, sim):
    image = backend.create_image(ImageSpec(name="props", disk_format="raw"), io.BytesIO(b"1"))
    patch = [{"op": "add", "path": "/min_ram", "value": "lots"}]
    answer = requests.patch(f"{sim.url}/image/v2/images/{image.id}", json=patch, timeout=5, headers={
        "X-Auth-Token": _token(sim), "Content-Type": "application/openstack-images-v2.1-json-patch"})
    assert answer.status_code == 400
    with pytest.raises(CloudError):
        backend.update_image(image.id, {"k" * 256: "value"})


@given(st.text(max_size=700))
def test_a_glance_name_fits_and_keeps_every_short_name_unchanged(name):
    clipped = glance_image_name(name)
    assert len(clipped) <= GLANCE_MAX_NAME
    if len(name) <= GLANCE_MAX_NAME:
        assert clipped == name
    else:
        assert clipped.startswith(name[:GLANCE_MAX_NAME - 9])


@given(st.text(min_size=256, max_size=400), st.text(min_size=1, max_size=20))
def test_long_names_that_differ_only_after_the_cut_stay_apart(name, tail):
    assert glance_image_name(name) != glance_image_name(name + tail)


def test_python_glanceclient_talks_to_the_simulated_glance(sim):
    client = glanceclient.client.Client("2", endpoint=sim.url + "/image", token=_token(sim))
    image = client.images.create(name="from glanceclient", disk_format="qcow2", container_format="bare",
                                 appliance="demo")
    client.images.upload(image.id, io.BytesIO(b"q" * 1024))
    assert client.images.get(image.id).status == "active"
    client.images.update(image.id, name="renamed", appliance="demo 2")
    got = client.images.get(image.id)
    assert got.name == "renamed" and got.appliance == "demo 2"
    assert image.id in {i.id for i in client.images.list()}
    # glanceclient checks names against the schema the simulator serves
    with pytest.raises(TypeError, match="too long"):
        client.images.create(name="n" * 256, disk_format="raw", container_format="bare")
