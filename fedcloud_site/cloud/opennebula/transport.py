"""XML-RPC transport for pyone: a requests session with our timeout and TLS settings, and a fast
answer parser (lxml) for the large documents oned sends."""

from __future__ import annotations

import xmlrpc.client
from typing import Any, Tuple

import pyone
import requests
from lxml import etree
from pyone.server_xrpc import RequestsTransport

#: oned's error codes (Request::ErrorCode) -> the exceptions pyone raises for them
ONE_ERRORS = {0x0100: pyone.OneAuthenticationException, 0x0200: pyone.OneAuthorizationException,
              0x0400: pyone.OneNoExistsException, 0x0800: pyone.OneActionException,
              0x1000: pyone.OneApiException, 0x2000: pyone.OneInternalException}


class Transport(RequestsTransport):
    """pyone's requests transport with a session (keep-alive), a timeout and TLS settings.

    pyone applies its timeout with ``socket.setdefaulttimeout`` (process-wide); this
    transport keeps it to our own requests.
    """

    def __init__(self, timeout: float, verify: Any, https: bool) -> None:
        super().__init__()
        self.session = requests.Session()
        self.timeout = timeout
        self.set_https(https)
        self.set_https_verify(verify)

    def request(self, host: str, handler: str, request_body: bytes, verbose: bool = False) -> Any:
        url = self._build_url(host, handler)
        resp = self.session.post(url, data=request_body, headers=self.headers, verify=self.https_verify,
                                 timeout=self.timeout)
        if resp.status_code != 200:
            raise xmlrpc.client.ProtocolError(url, resp.status_code, resp.reason or "", dict(resp.headers))
        return self.parse_response(resp)

    def parse_response(self, response: Any) -> Any:
        """The answer's values, decoded by lxml: xmlrpc.client's pure-Python unmarshaller is slow on
        the escaped XML documents oned sends (every entity splits the text)."""
        return parse_xmlrpc_response(response.content)

    def close(self) -> None:
        self.session.close()


def xml_parser() -> Any:
    """A parser for large answers (a new one per call: lxml parsers are not shared between threads)."""
    return etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)


def _xmlrpc_value(value: Any) -> Any:
    if len(value) == 0:
        return value.text or ""  # no type element: a string
    typed = value[0]
    tag = typed.tag
    if tag == "string":
        return typed.text or ""
    if tag in ("int", "i4", "i8"):
        return int(typed.text)
    if tag == "boolean":
        return typed.text.strip() == "1"
    if tag == "double":
        return float(typed.text)
    if tag == "nil":
        return None
    if tag == "array":
        return [_xmlrpc_value(v) for v in typed.iterfind("data/value")]
    if tag == "struct":
        return {m.findtext("name"): _xmlrpc_value(m.find("value")) for m in typed.iterfind("member")}
    raise xmlrpc.client.ResponseError(f"unsupported XML-RPC value type {tag!r}")


def parse_xmlrpc_response(content: bytes) -> Tuple[Any, ...]:
    """The params of an XML-RPC methodResponse (raises xmlrpc.client.Fault for a fault answer)."""
    try:
        root = etree.fromstring(content, xml_parser())
    except etree.XMLSyntaxError as exc:
        raise xmlrpc.client.ResponseError(f"malformed XML-RPC answer: {exc}") from exc
    if root.tag != "methodResponse":
        raise xmlrpc.client.ResponseError(f"not an XML-RPC answer (root element {root.tag!r})")
    fault = root.find("fault/value")
    if fault is not None:
        detail = _xmlrpc_value(fault)
        raise xmlrpc.client.Fault(detail.get("faultCode", -1), detail.get("faultString", ""))
    try:
        return tuple(_xmlrpc_value(v) for v in root.iterfind("params/param/value"))
    except (TypeError, ValueError, AttributeError) as exc:
        raise xmlrpc.client.ResponseError(f"malformed XML-RPC value: {exc}") from exc
