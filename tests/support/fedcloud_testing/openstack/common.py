"""Helpers shared by the simulated OpenStack services: errors, times, paging, tokens."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar
from urllib.parse import urlencode

from fedcloud_site.demo.http import Request, Response, json_response

from ..times import parse_time
from .model import SimRole, SimUser

if TYPE_CHECKING:  # pragma: no cover
    from .simulator import OpenStackSim

T = TypeVar("T")

#: Title of HTTP status codes, as Keystone and Nova put them in error bodies
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
          413: "Request Entity Too Large", 415: "Unsupported Media Type", 500: "Internal Server Error"}
#: Nova/Cinder error body keys
FAULT_KEYS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound", 409: "conflictingRequest",
              413: "overLimit", 415: "badMediaType", 500: "computeFault"}


class ApiError(Exception):
    """An error answer of the simulated API; the service module renders it in its own format."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def unauthorized(exc: ApiError) -> Response:
    """The 401 that keystonemiddleware answers before a service (Nova, Glance...) sees the request."""
    return json_response({"error": {"code": 401, "title": "Unauthorized", "message": exc.message}}, 401,
                         {"WWW-Authenticate": 'Keystone uri="http://127.0.0.1/v3"'})


def render_fault(exc: ApiError) -> Response:
    """A Nova or Cinder error answer: ``{"<fault key>": {"code": ..., "message": ...}}``."""
    if exc.status == 401:
        return unauthorized(exc)
    return json_response({FAULT_KEYS.get(exc.status, "computeFault"): {"code": exc.status, "message": exc.message}},
                         exc.status)


class Service:
    """The request handlers of one simulated service, over the simulator's data."""

    def __init__(self, sim: OpenStackSim) -> None:
        self.sim = sim
        self.data = sim.data

    def _token(self, request: Request) -> Token:
        """The caller's valid token (401 without one)."""
        token = self.sim.token_of(request)
        assert token is not None
        return token


def iso_z(moment: Optional[datetime]) -> Optional[str]:
    """``2026-11-03T12:00:00Z`` (Nova ``created``, Glance/Neutron times, Keystone expiry without fraction)."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_micro(moment: Optional[datetime]) -> Optional[str]:
    """``2026-11-03T12:00:00.000000`` (naive UTC with microseconds: launched_at, Cinder times, usage)."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


def iso_micro_z(moment: datetime) -> str:
    """``2026-11-03T12:00:00.000000Z`` (Keystone token times)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def query_time(value: Optional[str], name: str) -> Optional[datetime]:
    """A time given as a query parameter (400 when it cannot be read)."""
    if value is None or value == "":
        return None
    try:
        return parse_time(value.replace(" ", "T", 1) if "T" not in value else value)
    except ValueError:
        raise ApiError(400, f"Invalid input for query parameters {name}. Value: {value}. "
                            f"'{value}' is not a 'date-time'") from None


def query_int(value: Optional[str], name: str, minimum: int = 0) -> Optional[int]:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"Invalid input for query parameters {name}. Value: {value}. "
                            f"'{value}' is not an integer") from None
    if number < minimum:
        raise ApiError(400, f"Invalid input for query parameters {name}. Value: {value}. "
                            f"{value} is less than the minimum of {minimum}")
    return number


def query_bool(value: Optional[str]) -> Optional[bool]:
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes", "on", "t", "y", "")


def paginate(items: Sequence[T], marker: Optional[str], limit: int,
             key: Callable[[T], str] = lambda item: item.id,  # type: ignore[attr-defined]
             index: Optional[Dict[str, int]] = None) -> Tuple[List[T], bool]:
    """The page after ``marker`` (400 if unknown) of at most ``limit`` items, and whether more follow.

    ``index`` (key -> position in ``items``) makes the marker lookup constant-time.
    """
    start = 0
    if marker is not None:
        if index is not None:
            if marker not in index:
                raise ApiError(400, f"marker [{marker}] not found")
            start = index[marker] + 1
        else:
            for position, item in enumerate(items):
                if key(item) == marker:
                    start = position + 1
                    break
            else:
                raise ApiError(400, f"marker [{marker}] not found")
    page = list(items[start:start + limit])
    return page, start + limit < len(items)


def page_limit(request: Request, cap: int, default: Optional[int] = None) -> int:
    """The ``limit`` query parameter capped at ``cap``; ``default`` (else ``cap``) when not given."""
    limit = query_int(request.arg("limit"), "limit")
    if limit is None:
        limit = cap if default is None else default
    return min(limit, cap)


def page_links(base: str, request: Request, last_id: Optional[str], limit: int) -> List[Dict[str, str]]:
    """``[{"rel": "next", "href": ...}]`` continuing after ``last_id`` with the request's other parameters."""
    if last_id is None:
        return []
    params: List[Tuple[str, str]] = [(k, v) for k, values in request.query.items() if k not in ("marker", "limit")
                                     for v in values]
    params += [("limit", str(limit)), ("marker", last_id)]
    return [{"rel": "next", "href": f"{base}?{urlencode(params)}"}]


def short_page(request: Request) -> bool:
    """True when a ``short_page`` fault is to be enacted by this list request."""
    return request.fault is not None and request.fault.kind == "short_page"


class ListingCache:
    """Filtered, sorted listings kept while the data does not change, so that paging through N items
    costs O(N) in total instead of O(N) per page."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._entries: OrderedDict[Any, Tuple[Any, List[Any], Dict[str, int]]] = OrderedDict()

    def get(self, key: Any, version: Any, build: Callable[[], List[T]]) -> Tuple[List[T], Dict[str, int]]:
        entry = self._entries.get(key)
        if entry is None or entry[0] != version:
            items = build()
            entry = (version, items, {item.id: i for i, item in enumerate(items)})  # type: ignore[attr-defined]
            self._entries[key] = entry
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return entry[1], entry[2]


@dataclass
class Token:
    """An issued Keystone token."""

    id: str
    user: SimUser
    methods: List[str]
    scope: Optional[Tuple[str, str]]  # ("project", id) | ("domain", id) | ("system", "all") | None
    roles: List[SimRole]
    issued_at: datetime  # real time: clients compare expiry with their own clock
    expires_at: datetime
    audit_id: str
    app_credential_id: Optional[str] = None
    extras: Dict[str, Any] = field(default_factory=dict)

    @property
    def project_id(self) -> Optional[str]:
        return self.scope[1] if self.scope and self.scope[0] == "project" else None

    @property
    def is_system(self) -> bool:
        return bool(self.scope and self.scope[0] == "system")

    @property
    def is_admin(self) -> bool:
        return any(role.name == "admin" for role in self.roles)

    @property
    def is_reader(self) -> bool:
        """Admin, or a system-scoped reader/member (enough for cross-project listings)."""
        return self.is_admin or (self.is_system and bool(self.roles))
