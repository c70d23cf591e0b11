"""The HTTP side of the OpenStack backend: connecting through openstacksdk, one request with its errors
mapped to our :class:`~fedcloud_site.cloud.base.CloudError` kinds, paging, compute microversions and the
request counter behind ``api_requests``."""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from typing import Any, Dict, Iterator, Mapping, Optional, Set, Tuple
from urllib.parse import parse_qs, urlsplit

from ...log import get_logger
from ..base import BadCloudData, CloudAuthError, CloudError, CloudUnavailable, NotFound, NotSupported
from .settings import OpenStackSettings

log = get_logger("fedcloud_site.cloud.openstack")  # one logger for the whole backend

INSTANCE_ACTIONS_DELETED_MICROVERSION = (2, 21)  # actions of deleted servers
INSTANCE_ACTIONS_PAGED_MICROVERSION = (2, 58)  # limit/marker/changes-since, updated_at

#: compute microversions: what we ask for at most, and the last one with hypervisor statistics
COMPUTE_MICROVERSION = (2, 96)
HYPERVISOR_STATS_MICROVERSION = (2, 87)
EMBEDDED_FLAVOR_MICROVERSION = (2, 47)
FLAVOR_EXTRA_SPECS_MICROVERSION = (2, 61)
VOLUME_MICROVERSION = "3.0"

_ID_SEGMENT = re.compile(r"^(?:[0-9a-fA-F]{32}|[0-9a-fA-F-]{36}|\d+)$")
#: collections whose next path segment names one member (flavour ids such as "m1.small" are free text)
_COLLECTIONS = {"flavors", "servers", "images", "members", "projects", "users", "domains", "roles",
                "os-quota-sets", "os-hypervisors", "volumes", "floatingips", "networks"}
_COLLECTION_VIEWS = {"detail", "statistics", "defaults"}



class _RequestCounter:
    """Counts HTTP requests by method and path template (ids replaced by ``{id}``)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def hook(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        request = response.request
        parts = urlsplit(request.url).path.split("/")
        template = [parts[0]]
        for previous, part in zip(parts, parts[1:]):
            named = previous in _COLLECTIONS and part and part not in _COLLECTION_VIEWS
            template.append("{id}" if named or _ID_SEGMENT.match(part) else part)
        self.counts[f"{request.method} {'/'.join(template)}"] += 1
        return response


def _parse_version(text: Any) -> Tuple[int, int]:
    if isinstance(text, tuple):
        return int(text[0]), int(text[1])
    major, _, minor = str(text).partition(".")
    return int(major), int(minor or 0)


def _message(response: Any) -> str:
    """The error text of an OpenStack error answer (any service's format)."""
    try:
        body = response.json()
    except ValueError:
        text = re.sub(r"<[^>]+>", " ", response.text or "")
        return " ".join(text.split())[:300] or response.reason or ""
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and "message" in value:
                return str(value["message"])
        if "errors" in body and body["errors"]:
            return str(body["errors"][0].get("detail", ""))
    return str(body)[:300]


def connect(s: OpenStackSettings) -> Any:
    import openstack.config
    import openstack.connection

    common: Dict[str, Any] = {
        "interface": s.interface, "api_timeout": float(s.timeout), "connect_retries": s.retries,
        "status_code_retries": s.retries, "image_status_code_retries": s.retries,  # openstacksdk's is 5
        "retriable_status_codes": [500, 502, 503, 504],
        "connect_retry_delay": float(s.retry_delay), "status_code_retry_delay": float(s.retry_delay),
    }
    if s.region:
        common["region_name"] = s.region
    if s.cacert is not None:
        common["cacert"] = str(s.cacert)
    if not s.verify:
        common["verify"] = False
    try:
        if s.cloud is not None:
            files = [str(s.clouds_yaml)] if s.clouds_yaml is not None else None
            loader = openstack.config.OpenStackConfig(config_files=files, load_envvars=False)
            region = loader.get_one(cloud=s.cloud, **common)
            return openstack.connection.Connection(config=region)
        auth: Dict[str, Any] = {"auth_url": s.auth_url}
        if s.application_credential_id:
            common["auth_type"] = "v3applicationcredential"
            auth.update({"application_credential_id": s.application_credential_id,
                         "application_credential_secret": str(s.application_credential_secret)})
        else:
            common["auth_type"] = "password"
            auth.update({"username": s.username, "password": str(s.password),
                         "user_domain_name": s.user_domain_name})
            if s.system_scope:
                auth["system_scope"] = "all"
            else:
                auth["project_domain_name"] = s.project_domain_name
                if s.project_id:
                    auth["project_id"] = s.project_id
                else:
                    auth["project_name"] = s.project_name
        return openstack.connection.Connection(auth=auth, **common)
    except Exception as exc:  # noqa: BLE001 - openstack.config raises many kinds for a bad clouds.yaml
        raise CloudError(f"cannot set up the OpenStack connection: {exc}") from exc


class Session:
    """An authenticated connection to the cloud and the requests made through it."""

    def __init__(self, settings: OpenStackSettings) -> None:
        self.settings = settings
        self._counter = _RequestCounter()
        self.conn = connect(settings)
        self.conn.session.session.hooks.setdefault("response", []).append(self._counter.hook)
        self._compute_version: Optional[Tuple[int, int]] = None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    def request_count(self) -> Mapping[str, Any]:
        """``{"requests": total, "by_endpoint": {"GET /compute/v2.1/servers/detail": n, ...}}``."""
        counts = dict(self._counter.counts)
        return {"requests": sum(counts.values()), "by_endpoint": counts}

    def proxy(self, service: str) -> Any:
        return getattr(self.conn, service.replace("-", "_"))

    def call(self, service: str, method: str, path: str, what: str, ok: Tuple[int, ...] = (200,),
              retry: bool = False, **kwargs: Any) -> Any:
        """One API request; errors become CloudError subclasses naming ``what``.

        ``retry`` (idempotent reads) also retries bodies cut short and connection failures
        that keystoneauth does not retry itself.
        """
        from keystoneauth1 import exceptions as ksa

        attempts = self.settings.retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                response = self.proxy(service).request(path, method, **kwargs)
                if kwargs.get("stream"):
                    break
                _ = response.content  # read the whole body now: a cut body fails here
                break
            except ksa.EndpointNotFound as cause:
                raise NotSupported(f"{what}: the cloud has no {service} service in region "
                                   f"{self.settings.region or 'default'}") from cause
            except ksa.Unauthorized as exc:
                raise CloudAuthError(f"{what}: Keystone rejected the credentials: {exc}") from exc
            except ksa.Forbidden as exc:
                raise CloudAuthError(f"{what}: forbidden: {exc}") from exc
            except ksa.HttpError as exc:
                if exc.http_status and exc.http_status >= 500:
                    raise CloudUnavailable(f"{what}: Keystone answered {exc.http_status}: {exc}") from exc
                raise CloudAuthError(f"{what}: authentication failed: {exc}") from exc
            except (ksa.ConnectionError, ksa.DiscoveryFailure) as exc:
                if attempt + 1 < attempts:
                    log.warning("openstack_retry", what=what, attempt=attempt + 1, error=str(exc)[:200])
                    time.sleep(float(self.settings.retry_delay))
                    continue
                if isinstance(exc, ksa.UnknownConnectionError):  # e.g. a body cut short
                    raise CloudUnavailable(f"{what}: broken answer from the cloud: {exc}") from exc
                raise CloudUnavailable(f"{what}: cannot reach the cloud: {exc}") from exc
            except ksa.ClientException as exc:
                raise CloudError(f"{what}: {exc}") from exc
            except Exception as exc:  # noqa: BLE001 - requests/urllib3 errors while reading a body
                if attempt + 1 < attempts:
                    log.warning("openstack_retry", what=what, attempt=attempt + 1, error=str(exc)[:200])
                    time.sleep(float(self.settings.retry_delay))
                    continue
                raise CloudUnavailable(f"{what}: broken answer from the cloud: {exc}") from exc
        status = response.status_code
        if status in ok:
            return response
        message = _message(response)
        if status == 401:
            raise CloudAuthError(f"{what}: unauthorized ({message})")
        if status == 403:
            raise CloudAuthError(f"{what}: forbidden ({message})")
        if status == 404:
            raise NotFound(f"{what}: not found ({message})")
        if status >= 500:
            raise CloudUnavailable(f"{what}: the cloud answered {status} ({message})")
        raise CloudError(f"{what}: the cloud answered {status} ({message})")

    def json(self, response: Any, what: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise CloudUnavailable(f"{what}: the answer is not JSON (cut short?)") from exc

    def pages(self, service: str, path: str, params: Mapping[str, Any], key: str, what: str,
               headers: Optional[Mapping[str, str]] = None, microversion: Optional[str] = None,
               page_size: Optional[int] = None) -> Iterator[Dict[str, Any]]:
        """Items of a paged collection, following markers until the cloud answers an empty page."""
        limit = page_size or self.settings.page_size
        query: Dict[str, Any] = dict(params, limit=limit)
        extra: Dict[str, Any] = {}
        if headers:
            extra["headers"] = dict(headers)
        if microversion:
            extra["microversion"] = microversion
        seen: Set[str] = set()
        while True:
            body = self.json(self.call(service, "GET", path, what, params=query, retry=True, **extra), what)
            items = body.get(key) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise BadCloudData(f"{what}: the answer has no '{key}' list")
            if not items:
                return
            fresh = 0
            for item in items:
                if not isinstance(item, dict) or "id" not in item:
                    raise BadCloudData(f"{what}: an item without id: {str(item)[:200]}")
                if item["id"] in seen:
                    continue
                seen.add(item["id"])
                fresh += 1
                yield item
            if fresh == 0:  # the service ignores the marker (e.g. Neutron with allow_pagination = false)
                if len(items) >= limit:
                    raise BadCloudData(f"{what}: the cloud repeats a full page after marker {query.get('marker')}: "
                                       f"it does not page and more items may exist")
                log.warning("openstack_paging_ignored", what=what, items=len(seen))
                return
            next_marker = self.next_marker(body, key) or items[-1]["id"]
            if len(items) < limit:
                log.debug("openstack_short_page", what=what, got=len(items), limit=limit)
            query["marker"] = next_marker

    @staticmethod
    def next_marker(body: Mapping[str, Any], key: str) -> Optional[str]:
        href = body.get("next") if isinstance(body.get("next"), str) else None
        links = body.get(f"{key}_links") or body.get("links") or []
        if isinstance(links, list):
            for link in links:
                if isinstance(link, dict) and link.get("rel") == "next":
                    href = link.get("href")
        if not href:
            return None
        marker = parse_qs(urlsplit(str(href)).query).get("marker")
        return marker[-1] if marker else None

    def compute_max(self) -> Tuple[int, int]:
        if self._compute_version is None:
            from keystoneauth1 import exceptions as ksa

            try:
                data = self.conn.compute.get_endpoint_data()
            except ksa.Unauthorized as exc:
                raise CloudAuthError(f"compute discovery: Keystone rejected the credentials: {exc}") from exc
            except (ksa.ConnectionError, ksa.DiscoveryFailure) as exc:
                raise CloudUnavailable(f"compute discovery: cannot reach the cloud: {exc}") from exc
            except ksa.ClientException as exc:
                raise CloudError(f"compute discovery: {exc}") from exc
            if data is None:
                raise NotSupported("the cloud has no compute service")
            maximum = data.max_microversion
            self._compute_version = _parse_version(maximum) if maximum else (2, 1)
        return self._compute_version

    def compute_microversion(self, wanted: Tuple[int, int] = COMPUTE_MICROVERSION) -> str:
        version = min(self.compute_max(), wanted)
        return f"{version[0]}.{version[1]}"
