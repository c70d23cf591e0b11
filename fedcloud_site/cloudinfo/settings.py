"""``cloudinfo`` section: what the cloud information provider publishes and where.

Everything the cloud API cannot tell (the public endpoint's API version and
authentication, middleware version, capabilities, the endpoint's TLS
certificate, ...) is set here; nothing is made up.  Example::

    cloudinfo:
      interval: 30m
      cache_dir: /var/cache/fedcloud-site/cloudinfo
      max_cache_age: 2h          # the BDII provider prints nothing once the cache is older
      middleware: openstack      # whose GLUE facts; default: the cloud backend (required for the static backend)
      endpoint:
        authentication: oidc
        interface_version: "2.1"
        implementation_version: "2.96"
        certificate: /etc/grid-security/hostcert.pem
      manager:
        failover: false
      images: registry           # only images from the EGI registry (marketplace URI), or "all"
      ams:                       # optional: also publish the GLUE 2.1 JSON to ARGO AMS
        enabled: true            # topic SITE_<site.name>_ENDPOINT_<site.gocdb_service_id> by default
        token_file: /etc/fedcloud-site/ams-cloudinfo.token   # or the host certificate (certificate/key)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Literal, Optional

from ..cloud import backend_declaration, backend_names
from ..cloud.base import MiddlewareFacts
from ..schema import Duration, Secret
from ..settings import DaemonSettings

ServingState = Literal["production", "draining", "queueing", "closed"]
ExtendedBool = Literal["true", "false", "unknown"]


def middleware_facts(backend: str) -> Optional[MiddlewareFacts]:
    """The GLUE facts backend ``backend`` declares (None: it declares none); LookupError if not installed."""
    return backend_declaration(backend).middleware


@dataclass
class EndpointSettings:
    """``cloudinfo.endpoint``: the public compute endpoint users talk to."""

    url: Optional[str] = None  # default: site.endpoint
    id: Optional[str] = None  # default: <url>_<api type>_<api version> (cloud-info-provider's convention)
    api_version: Optional[str] = None  # in the ID; default v3 (Keystone) / xmlrpc
    interface_name: Optional[str] = None  # default org.openstack.nova / org.opennebula.compute
    interface_version: Optional[str] = None  # compute API version users get, e.g. "2.1"
    authentication: Optional[str] = None  # how users authenticate, e.g. "oidc" or "v3oidcaccesstoken"
    implementor: Optional[str] = None
    implementation_name: Optional[str] = None
    implementation_version: Optional[str] = None  # middleware (API) version, e.g. "2.96"
    semantics: Optional[str] = None
    technology: str = "webservice"
    serving_state: ServingState = "production"
    capabilities: List[str] = field(default_factory=list)
    downtime_info: Optional[str] = "https://goc.egi.eu/portal/index.php?Page_Type=Downtimes_Calendar&site={site}"
    certificate: Optional[Path] = None  # PEM of the endpoint's TLS certificate: subject and issuer are published
    issuer_ca: Optional[str] = None  # instead of reading it from ``certificate``
    trusted_cas: List[str] = field(default_factory=list)


@dataclass
class ManagerSettings:
    """``cloudinfo.manager``: the cloud manager; values here win over what the backend reports."""

    product_name: Optional[str] = None  # default: OpenStack / OpenNebula
    product_version: Optional[str] = None
    hypervisor: Optional[str] = None
    hypervisor_version: Optional[str] = None
    total_cpus: Optional[int] = None
    total_ram_mb: Optional[int] = None
    virtual_disk_formats: List[str] = field(default_factory=list)
    cpu_virtualization_type: Optional[str] = None
    network_virtualization_type: Optional[str] = None
    failover: Optional[bool] = None
    live_migration: Optional[bool] = None
    vm_backup_restore: Optional[bool] = None


@dataclass
class AMSSettings:
    """``cloudinfo.ams``: also publish the GLUE 2.1 JSON to ARGO AMS, one message per refresh.

    Authentication with ``token`` (or ``token_file``), else the host certificate exchanged for a token.
    """

    enabled: bool = False
    host: str = "msg.argo.grnet.gr"
    port: int = 443
    project: str = "egi_cloud_info"
    topic: Optional[str] = None  # default SITE_<site.name>_ENDPOINT_<site.gocdb_service_id>
    token: Optional[Secret] = None
    certificate: Path = Path("/etc/grid-security/hostcert.pem")
    key: Path = Path("/etc/grid-security/hostkey.pem")
    auth_url: Optional[str] = None  # default https://<host>:8443/v1/service-types/ams/hosts/<host>:authx509
    cacert: Optional[Path] = None  # CA file or directory to verify AMS (default: the system's CAs)
    timeout: Duration = Duration(60)
    retries: int = 2


@dataclass
class Settings(DaemonSettings):
    interval: Duration = Duration(1800)
    cache_dir: Path = Path("/var/cache/fedcloud-site/cloudinfo")
    max_cache_age: Duration = Duration(7200)  # the BDII provider stops publishing an older cache
    validity: Duration = Duration(43200)  # GLUE2EntityValidity / Validity
    middleware: Optional[str] = None  # a backend whose GLUE facts are published; default: the cloud backend
    ldif_base: str = "GLUE2GroupID=cloud,o=glue"
    json_file: Optional[Path] = None  # an extra copy of the JSON (e.g. served by a web server)
    service_id: Optional[str] = None  # default <endpoint url>_cloud.compute
    service_capabilities: List[str] = field(
        default_factory=lambda: ["executionmanagement.dynamicvmdeploy", "security.accounting"])
    service_aup: Optional[str] = "http://go.egi.eu/aup"
    status_info: Optional[str] = "https://argo.egi.eu/egi/report-status/Critical/SITES/{site}"
    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    manager: ManagerSettings = field(default_factory=ManagerSettings)
    images: Literal["registry", "all"] = "registry"  # registry: only images with a marketplace URI
    flavors: Literal["all", "public", "private"] = "all"
    instance_platform: str = "amd64"  # Platform of instance types (the backend does not tell)
    instance_os_family: str = "linux"  # GLUE 2.0 ExecutionEnvironmentOSFamily (required there)
    network_in: ExtendedBool = "unknown"  # instance types: inbound connectivity
    network_out: ExtendedBool = "true"
    image_access_info: Literal["none", "passwd", "rsa"] = "none"
    ams: AMSSettings = field(default_factory=AMSSettings)

    def validate(self) -> None:
        super().validate()
        if not self.ldif_base.endswith("o=glue"):
            raise ValueError(f"ldif_base must be below o=glue, got {self.ldif_base!r}")
        if self.cron is None and self.max_cache_age <= self.interval:
            raise ValueError(f"max_cache_age ({int(self.max_cache_age)} s) must be longer than interval "
                             f"({int(self.interval)} s), or the BDII stops publishing between two renders")

    def finish(self, config: Any) -> None:
        """Fill defaults that depend on other sections (what is still missing is reported by :meth:`missing`)."""
        if self.middleware is None and middleware_facts(config.cloud.backend) is not None:
            self.middleware = config.cloud.backend
        elif self.middleware is not None:
            try:
                facts = middleware_facts(self.middleware)
            except LookupError:
                facts = None
            if facts is None:
                described = [b for b in backend_names() if _describes(b)]
                raise ValueError(f"middleware: {self.middleware!r} is not a backend with GLUE facts "
                                 f"(installed: {', '.join(described) or 'none'})")
        if self.endpoint.url is None:
            self.endpoint.url = config.site.endpoint
        if self.ams.enabled and not self.ams.topic:
            if not config.site.gocdb_service_id:
                raise ValueError("ams.topic: required when ams is enabled (or set site.gocdb_service_id for the "
                                 "default SITE_<site>_ENDPOINT_<GOCDB service id>)")
            self.ams.topic = f"SITE_{config.site.name}_ENDPOINT_{config.site.gocdb_service_id}"

    def missing(self) -> List[str]:
        """Settings the provider needs that are neither configured nor derivable (key: reason)."""
        problems = []
        if self.middleware is None:
            problems.append("cloudinfo.middleware: required with this cloud backend (a backend with GLUE facts, "
                            "e.g. openstack or opennebula)")
        if not self.endpoint.url:
            problems.append("cloudinfo.endpoint.url: required (or site.endpoint): the public URL of the cloud API")
        return problems

    # -- derived values --------------------------------------------------------------------
    def fact(self, name: str) -> str:
        """A property of the configured middleware (:class:`~fedcloud_site.cloud.base.MiddlewareFacts`)."""
        facts = middleware_facts(self.middleware) if self.middleware is not None else None
        if facts is None:
            raise LookupError("cloudinfo.middleware: no backend with GLUE facts is configured")
        value: str = getattr(facts, name)
        return value

    @property
    def endpoint_url(self) -> str:
        return self.endpoint.url or ""

    @property
    def endpoint_id(self) -> str:
        if self.endpoint.id:
            return self.endpoint.id
        version = self.endpoint.api_version or self.fact("api_version")
        return f"{self.endpoint_url}_{self.fact('api_type')}_{version}"

    @property
    def compute_service_id(self) -> str:
        return self.service_id or f"{self.endpoint_url}_cloud.compute"

    @property
    def ldif_path(self) -> Path:
        return self.cache_dir / "cloudinfo.ldif"

    @property
    def json_path(self) -> Path:
        return self.cache_dir / "cloudinfo.json"

    @property
    def status_path(self) -> Path:
        return self.cache_dir / "cloudinfo.status.json"


def _describes(backend: str) -> bool:
    """Can backend ``backend`` be loaded and does it declare GLUE facts?"""
    try:
        return middleware_facts(backend) is not None
    except LookupError:
        return False
