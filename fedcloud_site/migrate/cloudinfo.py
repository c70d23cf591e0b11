"""cloud-info-provider's site file (1.x: EGI's fedcloud-catchall-operations format) -> ``site``, ``vos``,
``cloudinfo``.

cloud-info-provider 1.x publishes, for the site endpoint URL ``E`` (the ``endpoint`` key): service
``E_cloud.compute``, endpoint ``E_OpenStack_v3``, manager ``E_cloud.compute_manager``, one share per
VO ``E_OpenStack_v3_share_<vo>_<project id>``, under the GOCDB site name (``gocdb``); its AMS topic is
``SITE_<gocdb>_ENDPOINT_<GOCDB service id>``.  Our provider derives the same IDs from the same URL;
the migration pins the service and endpoint IDs (``cloudinfo.service_id``, ``cloudinfo.endpoint.id``)
so that they stay those of the entries the BDII and AMS consumers already know even if
``site.endpoint`` is edited later.  The GOCDB service id is not in the site file (cloud-info-provider
asks GOCDB at each run): give it with ``--gocdb-service-id`` to keep the AMS topic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from .errors import MigrationError
from .report import Report
from .result import ToolResult
from .yamlfile import read_yaml_mapping

TOOL = "cloud-info-provider"


def _text(path: Path, data: Any, key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MigrationError(path, f"expected a non-empty string, got {value!r}", where, key)
    return value.strip()


def migrate(path: Path, report: Report, gocdb_service_id: Optional[str] = None) -> ToolResult:
    """Read a cloud-info-provider 1.x site file into a :class:`ToolResult`."""
    path = Path(path)
    data = read_yaml_mapping(path)
    if "site" in data and "gocdb" not in data:
        raise MigrationError(path, "a cloud-info-provider 0.x site file (site/compute sections): migrate it to the "
                                   "1.x format (gocdb, endpoint, vos) first, or write the site and cloudinfo "
                                   "sections by hand", "site")
    site_name = _text(path, data, "gocdb", "site file")
    endpoint = _text(path, data, "endpoint", "site file")
    site: Dict[str, Any] = {"name": site_name, "endpoint": endpoint}
    report.map(path, "gocdb", "site.name", site_name)
    report.map(path, "endpoint", "site.endpoint", endpoint)
    cloudinfo: Dict[str, Any] = {"service_id": f"{endpoint}_cloud.compute",
                                 "endpoint": {"id": f"{endpoint}_OpenStack_v3"}}
    report.map(path, "endpoint", "cloudinfo.service_id", cloudinfo["service_id"],
               "pinned: the GLUE service keeps the ID cloud-info-provider published")
    report.map(path, "endpoint", "cloudinfo.endpoint.id", cloudinfo["endpoint"]["id"],
               "pinned: the GLUE endpoint (and its shares, manager) keep their IDs")
    region = data.get("region")
    if region is not None:
        if not isinstance(region, str):
            raise MigrationError(path, f"expected a string, got {region!r}", "site file", "region")
        site["region"] = region
        report.map(path, "region", "site.region", region)
    if gocdb_service_id:
        site["gocdb_service_id"] = gocdb_service_id
        cloudinfo["ams"] = {"enabled": True}
        report.map("--gocdb-service-id", "GOCDB service id", "site.gocdb_service_id", gocdb_service_id,
                   f"AMS topic stays SITE_{site_name}_ENDPOINT_{gocdb_service_id}")
    else:
        report.skip(path, "AMS topic SITE_<gocdb>_ENDPOINT_<GOCDB service id>",
                    "the GOCDB service id is not in the site file (cloud-info-provider looks it up in GOCDB): "
                    "run again with --gocdb-service-id, or set site.gocdb_service_id and cloudinfo.ams.enabled")
    vos_data = data.get("vos")
    if vos_data is None:
        vos_data = []
    if not isinstance(vos_data, list):
        raise MigrationError(path, "expected a list of {name, auth: {project_id}}", "site file", "vos")
    vos: Dict[str, Dict[str, List[str]]] = {}
    for index, entry in enumerate(vos_data):
        where = f"vos[{index}]"
        if not isinstance(entry, dict):
            raise MigrationError(path, "expected a mapping with name and auth", where)
        name = _text(path, entry, "name", where)
        auth = entry.get("auth")
        if not isinstance(auth, dict):
            raise MigrationError(path, "expected a mapping with project_id", where, "auth")
        project = _text(path, auth, "project_id", f"{where}.auth")
        projects = vos.setdefault(name, {"projects": []})["projects"]
        if project not in projects:
            projects.append(project)
        report.map(path, f"{where} ({name}).auth.project_id", f"vos.{name}.projects", project,
                   f"share ID {endpoint}_OpenStack_v3_share_{name}_{project} kept")
        for key in auth:
            if key != "project_id":
                report.skip(path, f"{where}.auth.{key}", "fedcloud-site reads every project with the credentials "
                                                          "of cloud.<backend>; no per-VO credentials")
        for key in entry:
            if key not in ("name", "auth"):
                report.skip(path, f"{where}.{key}", "not used by cloud-info-provider 1.x")
    for key in data:
        if key not in ("gocdb", "endpoint", "vos", "region"):
            report.skip(path, str(key), "not used by cloud-info-provider 1.x")
    shared: Dict[str, Any] = {"site": site}
    if vos:
        shared["vos"] = vos
    return ToolResult(TOOL, str(path), sections={"cloudinfo": cloudinfo}, shared=shared)
