"""A small ARGO Messaging Service (AMS) publisher on ``requests``, shared by the SSM sender and cloud-info.

* Authentication: a token in the ``x-api-key`` header, or the host certificate
  exchanged for a token at the AMS authentication service
  (``GET https://<host>:8443/v1/service-types/ams/hosts/<host>:authx509``,
  answer ``{"token": ...}``), renewed once when AMS answers 401.
* Publishing: ``POST /v1/projects/<project>/topics/<topic>:publish`` with
  ``{"messages": [{"attributes": {...}, "data": "<base64>"}]}``; the answer's
  ``messageIds`` (one per message, in order) are returned.
* Size guard: AMS refuses requests over its limit (HTTP 413).  Messages are
  grouped into requests that stay under ``max_request_bytes``; a message that
  alone would exceed it raises :class:`MessageTooLarge` naming that message,
  before anything is sent, so one oversized message cannot block the others.
  If AMS still answers 413 (a lower service limit), the batch is split in half
  until the offending message is alone.
* Connection errors, timeouts and 5xx answers are retried ``retries`` times
  with exponential backoff; such a retry may duplicate messages whose first
  request did arrive (counted in :attr:`AmsClient.retried_messages`).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import requests

from .errors import FedcloudSiteError

DEFAULT_MAX_REQUEST_BYTES = 1_000_000
_ENVELOPE = len('{"messages":[]}')


class AmsError(FedcloudSiteError):
    """AMS refused a request; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.published: List[str] = []  # ids of the messages published before this error (see publish)


class AmsAuthError(AmsError):
    """401/403: the token or certificate is not accepted (for this project/topic)."""


class AmsUnavailable(AmsError):
    """No answer, a timeout or a 5xx: try again later."""


class MessageTooLarge(AmsError):
    """One message cannot be published: alone it exceeds the service's size limit."""

    def __init__(self, index: int, size: int, limit: int, attributes: Mapping[str, str],
                 refused_by_service: bool = False) -> None:
        label = ", ".join(f"{k}={v}" for k, v in attributes.items()) or f"message #{index}"
        why = ("AMS refused it as too large (HTTP 413)" if refused_by_service
               else f"over the AMS limit of {limit} bytes")
        super().__init__(f"{label}: {size} bytes once encoded, {why}", 413, "INVALID_ARGUMENT")
        self.index = index
        self.refused_by_service = refused_by_service
        self.size = size
        self.limit = limit
        self.attributes = dict(attributes)


@dataclass
class AmsMessage:
    """One message to publish: raw bytes (base64-encoded on the wire) and string attributes."""

    data: bytes
    attributes: Dict[str, str] = field(default_factory=dict)

    def encoded(self) -> str:
        """The message's JSON object as sent."""
        return json.dumps({"attributes": self.attributes, "data": base64.b64encode(self.data).decode("ascii")},
                          separators=(",", ":"))


class AmsClient:
    """Publisher for one AMS project."""

    def __init__(self, host: str, project: str, *, token: Optional[str] = None, cert: Optional[str] = None,
                 key: Optional[str] = None, port: int = 443, auth_url: Optional[str] = None,
                 verify: Union[bool, str] = True, timeout: float = 30.0, retries: int = 2, backoff: float = 1.0,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 session: Optional[requests.Session] = None) -> None:
        if not token and not cert:
            raise ValueError("AMS needs a token or a client certificate")
        self.host = host
        self.project = project
        self.port = port
        self.token = token
        self.cert: Optional[Tuple[str, str]] = (cert, key or cert) if cert else None
        netloc = host if port == 443 else f"{host}:{port}"
        self.base_url = f"https://{netloc}/v1"
        self.auth_url = auth_url or f"https://{host}:8443/v1/service-types/ams/hosts/{host}:authx509"
        self.verify = verify
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_request_bytes = max_request_bytes
        self.session = session or requests.Session()
        self.retried_messages = 0
        self._token_from_cert = not token

    # -- authentication -------------------------------------------------------------------------
    def authenticate(self) -> str:
        """The token: the configured one, or one obtained with the client certificate."""
        if self.token:
            return self.token
        try:
            response = self.session.get(self.auth_url, cert=self.cert, verify=self.verify, timeout=self.timeout)
        except requests.RequestException as exc:
            raise AmsUnavailable(f"AMS authentication at {self.auth_url} failed: {_reason(exc)}") from exc
        if response.status_code != 200:
            error = _error(response)
            cls = AmsAuthError if response.status_code in (401, 403, 404) else AmsUnavailable
            raise cls(f"AMS authentication with the certificate refused: {error}", response.status_code)
        try:
            token = response.json()["token"]
        except (ValueError, KeyError, TypeError) as cause:
            raise AmsError("AMS authentication answered without a token", response.status_code) from cause
        self.token = str(token)
        return self.token

    # -- publishing -------------------------------------------------------------------------------
    def topic_url(self, topic: str) -> str:
        return f"{self.base_url}/projects/{self.project}/topics/{topic}:publish"

    def encoded_size(self, message: AmsMessage) -> int:
        """Bytes the message adds to a publish request (alone: plus the envelope)."""
        return len(message.encoded())

    def check_size(self, message: AmsMessage, index: int = 0) -> None:
        """Raise :class:`MessageTooLarge` if the message cannot be published even alone."""
        size = _ENVELOPE + self.encoded_size(message)
        if size > self.max_request_bytes:
            raise MessageTooLarge(index, size, self.max_request_bytes, message.attributes)

    def batches(self, messages: Sequence[AmsMessage]) -> List[Tuple[List[int], List[str]]]:
        """Indexes and JSON objects of ``messages`` grouped into requests under the size limit."""
        result: List[Tuple[List[int], List[str]]] = []
        indexes: List[int] = []
        parts: List[str] = []
        size = _ENVELOPE
        for index, message in enumerate(messages):
            part = message.encoded()
            if _ENVELOPE + len(part) > self.max_request_bytes:
                raise MessageTooLarge(index, _ENVELOPE + len(part), self.max_request_bytes, message.attributes)
            extra = len(part) + (1 if parts else 0)
            if parts and size + extra > self.max_request_bytes:
                result.append((indexes, parts))
                indexes, parts, size = [], [], _ENVELOPE
                extra = len(part)
            indexes.append(index)
            parts.append(part)
            size += extra
        if parts:
            result.append((indexes, parts))
        return result

    def publish(self, topic: str, messages: Sequence[AmsMessage]) -> List[str]:
        """Publish ``messages`` (in requests under the size limit); returns their AMS message ids in order.

        Raises :class:`MessageTooLarge` before sending anything if one message can never fit.
        Requests go out in order and stop at the first failure: the exception's ``published``
        lists the ids of the messages published before it (a prefix of ``messages``), and a
        :class:`MessageTooLarge` refused by the service has ``index`` = the offending message.
        """
        done: List[str] = []
        try:
            for _, parts in self.batches(messages):
                self._publish_parts(topic, parts, done)
        except AmsError as exc:
            exc.published = list(done)
            if isinstance(exc, MessageTooLarge) and exc.refused_by_service:
                exc.index = len(done)
            raise
        return done

    def _publish_parts(self, topic: str, parts: List[str], done: List[str]) -> None:
        try:
            done.extend(self._post(topic, parts))
        except AmsError as exc:
            if exc.status != 413:
                raise
            if len(parts) == 1:
                size = _ENVELOPE + len(parts[0])
                attributes = json.loads(parts[0]).get("attributes", {})
                raise MessageTooLarge(0, size, self.max_request_bytes, attributes, refused_by_service=True) from exc
            half = len(parts) // 2
            self._publish_parts(topic, parts[:half], done)
            self._publish_parts(topic, parts[half:], done)

    def _post(self, topic: str, parts: List[str]) -> List[str]:
        body = ('{"messages":[' + ",".join(parts) + "]}").encode("ascii")
        url = self.topic_url(topic)
        attempt = 0
        renewed = False
        while True:
            headers = {"Content-Type": "application/json", "x-api-key": self.authenticate()}
            try:
                response = self.session.post(url, data=body, headers=headers, verify=self.verify,
                                             timeout=self.timeout)
            except requests.RequestException as exc:
                error: AmsError = AmsUnavailable(f"AMS publish to {topic} failed: {_reason(exc)}")
            else:
                if response.status_code == 200:
                    return self._message_ids(response, len(parts))
                error = _status_error(response, topic)
                if response.status_code == 401 and self._token_from_cert and not renewed:
                    self.token = None  # the exchanged token may have expired: get a new one once
                    renewed = True
                    continue
            if not isinstance(error, AmsUnavailable) or attempt >= self.retries:
                raise error
            attempt += 1
            self.retried_messages += len(parts)
            time.sleep(self.backoff * 2 ** (attempt - 1))

    @staticmethod
    def _message_ids(response: requests.Response, expected: int) -> List[str]:
        try:
            ids = [str(i) for i in response.json()["messageIds"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise AmsError("AMS answered the publish without messageIds", response.status_code) from exc
        if len(ids) != expected:
            raise AmsError(f"AMS returned {len(ids)} message ids for {expected} messages", response.status_code)
        return ids


def _reason(exc: BaseException) -> str:
    return str(exc.__context__ or exc) if isinstance(exc, requests.ConnectionError) else str(exc)


def _error(response: requests.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error.get('status', '')} {error.get('message', '')}".strip()
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"{response.status_code} {response.text[:200].strip()}".strip()


def _status_error(response: requests.Response, topic: str) -> AmsError:
    status = response.status_code
    text = f"AMS publish to {topic}: {_error(response)}"
    if status in (401, 403):
        return AmsAuthError(text, status)
    if status >= 500 or status == 429:
        return AmsUnavailable(text, status)
    return AmsError(text, status)


__all__ = ["AmsClient", "AmsMessage", "AmsError", "AmsAuthError", "AmsUnavailable", "MessageTooLarge",
           "DEFAULT_MAX_REQUEST_BYTES"]
