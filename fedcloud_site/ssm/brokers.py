"""Which STOMP brokers to use: from the configuration, or discovered in a (top-)BDII over GLUE 2.0.

apel/ssm (before v4) searched GLUE 1.3 (``o=grid``) for ``GlueService`` entries of
type ``msg.broker.stomp-ssl`` (``msg.broker.stomp`` without TLS) and kept those
whose ``GlueServiceData`` ``cluster`` value named the network (``PROD``).  The
GLUE 2.0 form of the same facts, searched here under ``o=glue``:

* the broker endpoint is a ``GLUE2Endpoint`` whose ``GLUE2EndpointInterfaceName``
  is the service type (``msg.broker.stomp-ssl`` / ``msg.broker.stomp``), or an
  endpoint of a ``GLUE2Service`` whose ``GLUE2ServiceType`` is that type;
* its address is ``GLUE2EndpointURL`` (``stomp+ssl://host:port``);
* the network is the ``cluster=<network>`` (or ``network=<network>``) value of
  ``GLUE2EntityOtherInfo``, the GLUE 2.0 home of GLUE 1.3 service data, on the
  endpoint or its service;
* endpoints marked ``GLUE2EndpointServingState: closed`` or
  ``GLUE2EndpointHealthState: critical`` are left out.

The last list that worked is cached on disk and used when the BDII cannot be
reached, so a BDII outage does not stop accounting.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from ..atomic import atomic_write_text
from ..errors import FedcloudSiteError
from .settings import parse_broker

Broker = Tuple[str, int]

STOMP_SSL_TYPE = "msg.broker.stomp-ssl"
STOMP_TYPE = "msg.broker.stomp"
_ENDPOINT_ATTRS = ["GLUE2EndpointID", "GLUE2EndpointURL", "GLUE2EndpointInterfaceName",
                   "GLUE2EndpointServiceForeignKey", "GLUE2EntityOtherInfo", "GLUE2EndpointServingState",
                   "GLUE2EndpointHealthState"]


class DiscoveryError(FedcloudSiteError):
    """No broker list: the BDII failed and nothing is cached."""


def _values(entry: Any, name: str) -> List[str]:
    attributes = entry.get("attributes", {})
    for key, value in attributes.items():
        if key.lower() == name.lower():
            if isinstance(value, list):
                return [str(v) for v in value]
            return [str(value)] if value not in (None, "") else []
    return []


def _networks(other_info: Iterable[str]) -> List[str]:
    found = []
    for item in other_info:
        key, sep, value = item.partition("=")
        if sep and key.strip().lower() in ("cluster", "network"):
            found.append(value.strip())
    return found


def _connection(url: str, timeout: float) -> ldap3.Connection:
    parts = urlsplit(url if "://" in url else f"ldap://{url}")
    use_ssl = parts.scheme == "ldaps"
    server = ldap3.Server(parts.hostname or "localhost", port=parts.port or (636 if use_ssl else 2170),
                          use_ssl=use_ssl, get_info=ldap3.NONE, connect_timeout=timeout)
    # ldap3 packs receive_timeout into SO_RCVTIMEO: whole seconds only
    return ldap3.Connection(server, auto_bind=True, receive_timeout=max(1, math.ceil(timeout)), read_only=True)


def discover(bdii: str, network: str, use_ssl: bool = True, timeout: float = 30.0,
             base: str = "o=glue") -> List[Broker]:
    """Brokers of ``network`` published in the BDII at ``bdii`` (``ldap://host:port``); raises DiscoveryError."""
    service_type = STOMP_SSL_TYPE if use_ssl else STOMP_TYPE
    wanted_scheme = "stomp+ssl" if use_ssl else "stomp"
    kind = escape_filter_chars(service_type)
    try:
        conn = _connection(bdii, timeout)
    except (LDAPException, OSError) as exc:
        raise DiscoveryError(f"BDII {bdii}: {exc}") from exc
    try:
        conn.search(base, f"(&(objectClass=GLUE2Service)(GLUE2ServiceType={kind}))",
                    attributes=["GLUE2ServiceID", "GLUE2EntityOtherInfo"])
        services: Dict[str, List[str]] = {}
        for entry in conn.response or []:
            if entry.get("type") == "searchResEntry":
                for service_id in _values(entry, "GLUE2ServiceID"):
                    services[service_id] = _networks(_values(entry, "GLUE2EntityOtherInfo"))
        clauses = [f"(GLUE2EndpointInterfaceName={kind})"]
        clauses += [f"(GLUE2EndpointServiceForeignKey={escape_filter_chars(sid)})" for sid in sorted(services)]
        conn.search(base, f"(&(objectClass=GLUE2Endpoint)(|{''.join(clauses)}))", attributes=_ENDPOINT_ATTRS)
        endpoints = [entry for entry in conn.response or [] if entry.get("type") == "searchResEntry"]
    except (LDAPException, OSError) as exc:
        raise DiscoveryError(f"BDII {bdii}: search failed: {exc}") from exc
    finally:
        try:
            conn.unbind()
        except LDAPException:
            pass
    brokers: List[Broker] = []
    for entry in endpoints:
        if any(v.lower() == "closed" for v in _values(entry, "GLUE2EndpointServingState")):
            continue
        if any(v.lower() == "critical" for v in _values(entry, "GLUE2EndpointHealthState")):
            continue
        networks = _networks(_values(entry, "GLUE2EntityOtherInfo"))
        for service_id in _values(entry, "GLUE2EndpointServiceForeignKey"):
            networks += services.get(service_id, [])
        if network and network not in networks:
            continue
        for url in _values(entry, "GLUE2EndpointURL"):
            scheme = url.split("://", 1)[0].lower() if "://" in url else ""
            if scheme and scheme != wanted_scheme:
                continue
            try:
                broker = parse_broker(url)
            except ValueError:
                continue
            if broker not in brokers:
                brokers.append(broker)
    return sorted(brokers)


class BrokerCache:
    """The last broker list that worked, as JSON in the state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, brokers: Sequence[Broker], source: str) -> None:
        data = {"source": source, "saved": time.time(), "brokers": [f"{h}:{p}" for h, p in brokers]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(data, indent=1) + "\n")

    def load(self) -> Optional[Tuple[List[Broker], float]]:
        """(brokers, age in seconds) or None."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            brokers = [parse_broker(b) for b in data["brokers"]]
            return brokers, max(0.0, time.time() - float(data.get("saved", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def resolve_brokers(settings: Any, state_dir: Path, log: Any) -> List[Broker]:
    """The configured brokers, else the BDII's (cached), else the cached list; raises DiscoveryError."""
    if settings.brokers:
        return list(settings.broker_addresses())
    cache = BrokerCache(state_dir / "brokers.json")
    try:
        brokers = discover(settings.bdii, settings.network, settings.use_ssl, float(settings.bdii_timeout))
        if not brokers:
            raise DiscoveryError(f"BDII {settings.bdii} lists no {STOMP_SSL_TYPE if settings.use_ssl else STOMP_TYPE}"
                                 f" endpoint for network {settings.network}")
    except DiscoveryError as exc:
        cached = cache.load()
        if cached is None:
            raise
        log.warning("broker discovery failed, using the last known brokers", error=str(exc),
                    cached_age_s=round(cached[1]), brokers=[f"{h}:{p}" for h, p in cached[0]])
        return cached[0]
    try:
        cache.save(brokers, settings.bdii)
    except OSError as exc:
        log.warning("cannot cache the broker list", path=str(cache.path), error=str(exc))
    log.info("brokers discovered", bdii=settings.bdii, network=settings.network,
             brokers=[f"{h}:{p}" for h, p in brokers])
    return brokers
