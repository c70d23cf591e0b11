"""Helpers of the cloud information provider tests: the fixed test site, its configuration, rendering."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional

from fedcloud_site.cloud import open_backend
from fedcloud_site.cloudinfo.glue21json import write_json
from fedcloud_site.cloudinfo.ldif import write_ldif
from fedcloud_site.cloudinfo.model import SiteModel, build_model
from fedcloud_site.config import Config

# --------------------------------------------------------------------------- a fixed test site

DATA = Path(__file__).resolve().parent / "data"
SITE_FILE = DATA / "site.yaml"
FIXED_NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)
ENDPOINT = "https://cloud.test.example.org:5000/v3"

CONFIG_TEMPLATE = """\
site:
  name: TEST-SITE
  endpoint: {endpoint}
  gocdb_service_id: 1234G0
  production_level: production
cloud:
  backend: {backend}
  {backend}:
{backend_settings}
vos:
  biomed:
    projects: [biomed-cloud]
    sla: https://egi.eu/sla/biomed
  fedcloud.egi.eu:
    default_network_type: private
    public_network_name: public
cloudinfo:
  state_dir: {tmp}/state
  cache_dir: {tmp}/cache
  middleware: openstack
  endpoint:
    authentication: password
    interface_version: "2.0"
    implementation_version: "2.96"
{cloudinfo_extra}
"""


def write_site_config(tmp_path: Path, backend: str = "static", backend_settings: Optional[str] = None,
                      cloudinfo_extra: str = "", endpoint: str = ENDPOINT, site_file: Path = SITE_FILE) -> Path:
    """A configuration for the test site (static backend unless told otherwise) in tmp_path."""
    if backend_settings is None:
        backend_settings = f"    site_file: {site_file}\n    state_file: {tmp_path}/static-state.json"
    text = CONFIG_TEMPLATE.format(tmp=tmp_path, backend=backend, backend_settings=backend_settings,
                                  cloudinfo_extra=cloudinfo_extra, endpoint=endpoint)
    path = tmp_path / "fedcloud-site.yaml"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def build(config: Config, now: datetime = FIXED_NOW) -> SiteModel:
    """The model of the configured site, read through the configured backend."""
    backend = open_backend(config)
    try:
        return build_model(config, backend, now)
    finally:
        backend.close()


def ldif_of(model: SiteModel) -> str:
    out = io.BytesIO()
    write_ldif(model, out)
    return out.getvalue().decode("ascii")


def json_of(model: SiteModel) -> Dict[str, Any]:
    out = io.BytesIO()
    write_json(model, out)
    return json.loads(out.getvalue().decode("utf-8"))
