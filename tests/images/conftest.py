"""Fixtures for the image-list subscriber: a test PKI, signed lists, a local image server, a site config.

Everything is real: certificates from fedcloud_site.demo.ca, lists signed with fedcloud_site.smime,
HTTP from fedcloud_testing.image_server on 127.0.0.1, the static cloud backend (or the simulators).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import yaml

from fedcloud_site import cli, smime
from fedcloud_site.cloud import open_backend
from fedcloud_site.config import load_config
from fedcloud_site.demo.ca import CertificateAuthority, Credential, write_ca_directory
from fedcloud_site.images.register import is_ours
from fedcloud_site.images.state import StateDB
from fedcloud_site.timeutil import iso_utc, utcnow
from fedcloud_testing.image_server import ImageServer, write_random_file
from fedcloud_testing.opennebula import OpenNebulaSimulator, from_static
from fedcloud_testing.openstack import ADMIN_PASSWORD, ADMIN_PROJECT, ADMIN_USER, OpenStackSim, from_site

LIST_ID = "6b1f2e3d-0000-4000-8000-00000000a001"
ENDORSER_DN = "/DC=org/DC=example/O=Hosts/CN=appdb.example.org"
CA_DN = "/DC=org/DC=example/CN=Test Grid CA"


@dataclass
class Pki:
    ca: CertificateAuthority
    endorser: Credential  # host certificate: serverAuth/clientAuth, no S/MIME purpose
    impostor: Credential  # same CA, another DN
    rogue_ca: CertificateAuthority  # not in the CA directory
    rogue_endorser: Credential  # the endorser's DN, issued by the rogue CA


@pytest.fixture(scope="session")
def pki() -> Pki:
    ca = CertificateAuthority(CA_DN)
    rogue = CertificateAuthority(CA_DN.replace("Test Grid CA", "Rogue CA"))
    return Pki(ca=ca, endorser=ca.host("appdb.example.org", dn_prefix="/DC=org/DC=example/O=Hosts"),
               impostor=ca.host("impostor.example.org", dn_prefix="/DC=org/DC=example/O=Hosts"),
               rogue_ca=rogue, rogue_endorser=rogue.host("appdb.example.org", dn_prefix="/DC=org/DC=example/O=Hosts"))


class World:
    """One test's site: CA directory, image server content, config, and ways to run and inspect."""

    def __init__(self, tmp: Path, pki: Pki, server: ImageServer) -> None:
        self.tmp = tmp
        self.pki = pki
        self.server = server
        self.capath = write_ca_directory(tmp / "certificates", [pki.ca])
        self.files = tmp / "served"
        self.list_path = "/store/vo/fedcloud.egi.eu/image.list"
        self.config_path = tmp / "fedcloud-site.yaml"
        self.images_settings: Dict[str, Any] = {}
        self.subscription: Dict[str, Any] = {}
        self.site: Dict[str, Any] = {"projects": [{"id": "p-fedcloud", "name": "fedcloud"}],
                                     "flavors": [{"id": "m1", "name": "m1", "vcpus": 1, "ram": 512, "disk": 1}],
                                     "vms": []}
        self.cloud_section: Optional[Dict[str, Any]] = None  # default: the static backend on self.site

    # -- content -----------------------------------------------------------------------------
    def image(self, name: str, size: int = 300_000, seed: int = 0, **fields: Any) -> Dict[str, Any]:
        """Serve a random image at /images/<name>; returns its hv:image entry."""
        path = self.files / "images" / name
        sha512 = write_random_file(path, size, seed=seed or hash(name) % 10_000)
        url = self.server.put(f"/images/{name}", path)
        entry = {"dc:identifier": fields.pop("identifier", str(uuid.uuid5(uuid.NAMESPACE_URL, name))),
                 "dc:title": fields.pop("title", f"Image {name}"), "dc:description": f"{name} for tests",
                 "hv:uri": url, "hv:size": str(size), "sl:checksum:sha512": sha512, "hv:version": "1",
                 "hv:format": "RAW", "sl:arch": "x86_64", "sl:os": "Linux", "sl:osname": "Ubuntu",
                 "sl:osversion": "22.04", "ad:mpuri": f"https://appdb.example.org/store/vm/image/{name}:1/",
                 "hv:ram_minimum": "512"}
        entry.update(fields)
        return entry

    def image_list(self, images: List[Dict[str, Any]], version: str = "20240101000000",
                   expires: Optional[str] = None, identifier: str = LIST_ID,
                   endorser: str = ENDORSER_DN, ca: str = CA_DN) -> Dict[str, Any]:
        now = utcnow()
        return {"hv:imagelist": {
            "dc:identifier": identifier, "dc:title": "fedcloud.egi.eu", "dc:description": "VO list",
            "dc:source": "https://appdb.example.org/", "ad:vo": "fedcloud.egi.eu", "hv:version": version,
            "dc:date:created": iso_utc(now - timedelta(hours=1)),
            "dc:date:expires": expires or iso_utc(now + timedelta(days=30)),
            "hv:uri": self.server.url + self.list_path,
            "hv:endorser": {"hv:x509": {"dc:creator": "Applications Database", "hv:email": "appdb@example.org",
                                        "hv:dn": endorser, "hv:ca": ca}},
            "hv:images": [{"hv:image": image} for image in images]}}

    def sign(self, document: Any, signer: Optional[Credential] = None) -> bytes:
        payload = document if isinstance(document, bytes) else json.dumps(document, indent=1).encode()
        cred = signer or self.pki.endorser
        return smime.sign(payload, cred.cert, cred.key)

    def publish(self, document: Any, signer: Optional[Credential] = None, raw: Optional[bytes] = None) -> str:
        """Sign and serve a list at the subscription URL."""
        data = raw if raw is not None else self.sign(document, signer)
        return self.server.put(self.list_path, data, self.files / "lists" / uuid.uuid4().hex)

    # -- config --------------------------------------------------------------------------------
    def write_config(self, subscriptions: Optional[List[Dict[str, Any]]] = None, **images: Any) -> Path:
        site_file = self.tmp / "site.yaml"
        site_file.write_text(yaml.safe_dump(self.site), encoding="utf-8")
        sub = {"name": "fedcloud", "url": self.server.url + self.list_path, "endorser_dn": ENDORSER_DN,
               "ca_dn": CA_DN, "vo": "fedcloud.egi.eu"}
        sub.update(self.subscription)
        section = {"state_dir": str(self.tmp / "state"), "cache_dir": str(self.tmp / "cache"),
                   "capath": str(self.capath), "grace_period": 0, "retry_after": 0,
                   "subscriptions": subscriptions if subscriptions is not None else [sub]}
        self.images_settings.update(images)
        section.update(self.images_settings)
        config = {"site": {"name": "TEST-SITE"},
                  "cloud": self.cloud_section or {
                      "backend": "static", "static": {"site_file": str(site_file),
                                                      "state_file": str(self.tmp / "cloud-state.json")}},
                  "vos": {"fedcloud.egi.eu": {"projects": ["fedcloud"]}},
                  "images": section}
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return self.config_path

    # -- run and inspect -------------------------------------------------------------------------
    def sync(self, *extra: str) -> int:
        if not self.config_path.exists():
            self.write_config()
        return cli.main(["--config", str(self.config_path), "images", "once", *extra])

    def status(self) -> List[Dict[str, Any]]:
        path = self.tmp / "state" / "images.sqlite"
        if not path.exists():
            return []
        with StateDB(path) as db:
            return db.status()

    def list_state(self) -> Dict[str, Any]:
        with StateDB(self.tmp / "state" / "images.sqlite") as db:
            row = db.subscription("fedcloud")
            return dict(vars(row)) if row else {}

    def by_state(self, state: str) -> List[Dict[str, Any]]:
        return [row for row in self.status() if row["state"] == state]

    def cloud(self) -> Any:
        return open_backend(load_config(self.config_path))

    def cloud_images(self) -> List[Any]:
        return [i for i in self.cloud().list_images() if is_ours(i)]

    def use_image(self, image_id: str) -> None:
        """A running VM now uses the image (static site description)."""
        self.site["vms"].append({"id": f"vm-{image_id[:8]}", "name": "user vm", "project": "p-fedcloud",
                                 "user": "u1", "status": "running", "created": iso_utc(utcnow()),
                                 "image": image_id})
        self.write_config()


@pytest.fixture
def image_server():
    with ImageServer() as server:
        yield server


@pytest.fixture
def world(tmp_path: Path, pki: Pki, image_server: ImageServer) -> World:
    return World(tmp_path, pki, image_server)


@pytest.fixture
def opennebula(world, tmp_path):
    """The world's site served by the OpenNebula simulator, the config pointing at it (pyone)."""
    with OpenNebulaSimulator(from_static(world.site)) as sim:
        user = next(u for u in sim.cloud.users.values() if 0 in u.groups)
        world.cloud_section = {"backend": "opennebula", "opennebula": {
            "endpoint": sim.url, "username": user.name, "password": user.password, "poll_interval": 0.01,
            "upload_dir": str(tmp_path / "one-upload")}}
        world.write_config()
        yield sim


@pytest.fixture
def openstack(world):
    """The world's site served by the OpenStack simulator, the config pointing at it (openstacksdk)."""
    with OpenStackSim(from_site(world.site)) as sim:
        world.cloud_section = {"backend": "openstack", "openstack": {
            "auth_url": sim.auth_url, "username": ADMIN_USER, "password": ADMIN_PASSWORD,
            "project_name": ADMIN_PROJECT, "retry_delay": 0.01}}
        world.write_config()
        yield sim
