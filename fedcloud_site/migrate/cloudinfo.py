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

The file given may also be cloud-info-provider's argument file (``cloud-info-provider-service
@FILE``: one argument per line, argparse's ``fromfile_prefix_chars``), as sites keep the options of
their cron job or unit: its ``--os-*`` options become ``cloud.openstack``, ``--select-flavors`` and
``--only-appdb-images`` the ``cloudinfo`` choices, and its positional site file is read as above
(relative to the argument file's directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from .errors import MigrationError, read_text
from .report import Report
from .result import ToolResult
from .yamlfile import read_yaml_mapping

TOOL = "cloud-info-provider"


def _text(path: Path, data: Any, key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MigrationError(path, f"expected a non-empty string, got {value!r}", where, key)
    return value.strip()


#: cloud-info-provider's (os-client-config's) --os-* options -> cloud.openstack keys
OS_OPTIONS = {"os-auth-url": "auth_url", "os-username": "username", "os-password": "password",
              "os-project-name": "project_name", "os-project-id": "project_id",
              "os-user-domain-name": "user_domain_name", "os-project-domain-name": "project_domain_name",
              "os-application-credential-id": "application_credential_id",
              "os-application-credential-secret": "application_credential_secret", "os-region-name": "region",
              "os-cacert": "cacert", "os-interface": "interface", "os-cloud": "cloud"}
SECRET_OPTIONS = {"os-password", "os-application-credential-secret"}
FLAGS = {"insecure", "debug", "exit-on-share-errors", "only-appdb-images"}
#: options whose default we read the same way (flavor extra specs, cASO's and our conventions)
SAME_DEFAULTS = {"property-flavor-gpu-number": "Accelerator:Number", "property-flavor-gpu-vendor": "Accelerator:Vendor",
                 "property-flavor-gpu-model": "Accelerator:Model"}
IGNORED = {"format": "we publish both GLUE 2.0 LDIF (BDII) and GLUE 2.1 JSON (AMS)",
           "publisher": "the cloudinfo daemon writes its cache for the BDII and publishes to AMS itself",
           "timeout": "cloudinfo uses cloud.openstack.timeout for every request",
           "debug": "logging.level: debug",
           "exit-on-share-errors": "a share that cannot be read is reported and left out; the others are published",
           "auditor-role-cloud": "not published by fedcloud-site"}


def is_argument_file(text: str) -> bool:
    """cloud-info-provider's argument file: the first argument is a long option (a YAML site file starts with a
    key, a ``---`` document marker or, when it is not a mapping at all, a ``- `` list item)."""
    first = next((line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")), "")
    return first.startswith("--") and not first.startswith("---")


def migrate(path: Path, report: Report, gocdb_service_id: Optional[str] = None) -> ToolResult:
    """Read a cloud-info-provider 1.x site file (or its argument file) into a :class:`ToolResult`."""
    path = Path(path)
    text = read_text(path)
    if is_argument_file(text):
        return _migrate_arguments(path, text, report, gocdb_service_id)
    report.default(TOOL, "images published", "every image (without --only-appdb-images)",
                   "cloudinfo.images: registry (marketplace images only)", kept=False,
                   note="give the argument file instead of the site file to carry --only-appdb-images over, "
                        "or set cloudinfo.images: all")
    return _migrate_site_file(path, report, gocdb_service_id)


def _migrate_arguments(path: Path, text: str, report: Report, gocdb_service_id: Optional[str]) -> ToolResult:
    openstack: Dict[str, Any] = {}
    cloudinfo: Dict[str, Any] = {}
    site_files: List[str] = []
    args = [line.rstrip("\n") for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    index = 0
    while index < len(args):
        arg = args[index].strip()
        index += 1
        if not arg.startswith("-"):
            site_files.append(arg)
            continue
        name, has_value, value = arg.lstrip("-").partition("=")
        if name in FLAGS:
            if has_value:
                raise MigrationError(path, f"--{name} takes no value", "arguments", f"--{name}")
        elif not has_value:
            if index >= len(args):
                raise MigrationError(path, "needs a value", "arguments", f"--{name}")
            value = args[index].strip()
            index += 1
        old = f"--{name}"
        if name in OS_OPTIONS:
            key = OS_OPTIONS[name]
            openstack[key] = value
            report.map(path, old, f"cloud.openstack.{key}", value, secret=name in SECRET_OPTIONS)
        elif name == "os-auth-type":
            if value.lower() not in ("password", "v3password", "applicationcredential", "v3applicationcredential"):
                raise MigrationError(path, f"auth type {value!r}: fedcloud-site authenticates with a password or an "
                                           "application credential (Keystone v3)", "arguments", old)
            report.map(path, old, "cloud.openstack (credentials given)", value)
        elif name == "insecure":
            openstack["verify"] = False
            report.map(path, old, "cloud.openstack.verify", False, "TLS certificates of the cloud are not checked")
        elif name == "middleware":
            if value not in ("openstack", "opennebula"):
                raise MigrationError(path, f"middleware {value!r}: openstack or opennebula", "arguments", old)
            cloudinfo["middleware"] = value
            report.map(path, old, "cloudinfo.middleware", value)
        elif name == "select-flavors":
            if value not in ("all", "public", "private"):
                raise MigrationError(path, f"expected all, public or private, got {value!r}", "arguments", old)
            cloudinfo["flavors"] = value
            report.map(path, old, "cloudinfo.flavors", value)
        elif name == "only-appdb-images":
            cloudinfo["images"] = "registry"
            report.map(path, old, "cloudinfo.images", "registry")
        elif name in SAME_DEFAULTS and value == SAME_DEFAULTS[name]:
            report.map(path, old, "(built in)", value, "fedcloud-site reads the same flavor extra spec")
        elif name in IGNORED:
            report.skip(path, old, IGNORED[name])
        else:
            report.skip(path, old, "no fedcloud-site equivalent (flavor and image properties are read under their "
                                   "standard names)" if name.startswith("property-") else
                        "not an option of cloud-info-provider 1.2 fedcloud-site maps")
    if "images" not in cloudinfo:
        cloudinfo["images"] = "all"
        report.default(TOOL, "--only-appdb-images not given", "every image", "cloudinfo.images: registry", kept=True)
    if len(site_files) != 1:
        raise MigrationError(path, f"expected one site file among the arguments, found {len(site_files)}",
                             "arguments", "site_config")
    site_file = Path(site_files[0])
    if not site_file.is_absolute():
        site_file = path.parent / site_file
    result = _migrate_site_file(site_file, report, gocdb_service_id)
    result.source = str(path)
    for key, value in cloudinfo.items():
        result.sections["cloudinfo"][key] = value
    if openstack:
        if not any(k in openstack for k in ("project_name", "project_id", "application_credential_id", "cloud")):
            openstack["system_scope"] = True
            report.default(TOOL, "--os-project-*", "none: cloud-info-provider scoped itself to each VO's project",
                           "one scope", kept=False, note="cloud.openstack.system_scope: true written; the user "
                                                         "needs a system-scoped reader role")
        result.shared["cloud"] = {"backend": "openstack", "openstack": openstack}
    return result


def _migrate_site_file(path: Path, report: Report, gocdb_service_id: Optional[str]) -> ToolResult:
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
