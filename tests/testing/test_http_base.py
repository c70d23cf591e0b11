"""The simulator HTTP base: routing, request counters, fault injection, loopback only."""

from __future__ import annotations

import pytest
import requests

from fedcloud_site.demo.http import Fault, SimServer, json_response


@pytest.fixture
def server():
    sim = SimServer()
    calls = []

    def handler(request):
        calls.append(request.match["id"])
        return json_response({"id": request.match["id"], "q": request.arg("q")})

    sim.route("GET", r"/things/(?P<id>\w+)", "things", handler)
    sim.calls = calls
    with sim:
        yield sim


def test_routes_answer_and_count_requests(server):
    assert requests.get(f"{server.url}/things/a?q=1", timeout=5).json() == {"id": "a", "q": "1"}
    assert requests.get(f"{server.url}/nothing", timeout=5).status_code == 404
    assert server.requests["things"] == 1
    assert server.total_requests == 1


def test_status_fault_happens_before_the_handler_runs(server):
    server.inject(Fault("status", "things", count=2, status=503))
    assert requests.get(f"{server.url}/things/a", timeout=5).status_code == 503
    assert requests.get(f"{server.url}/things/b", timeout=5).status_code == 503
    assert requests.get(f"{server.url}/things/c", timeout=5).status_code == 200
    assert server.calls == ["c"]
    assert server.requests["things"] == 3


def test_slow_truncated_and_dropped_responses(server):
    server.inject(Fault("delay", "things", delay=0.5))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{server.url}/things/a", timeout=0.2)
    server.inject(Fault("truncate", "things"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{server.url}/things/a", timeout=5).json()
    server.inject(Fault("drop", "things"))
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{server.url}/things/a", timeout=5)
    assert requests.get(f"{server.url}/things/ok", timeout=5).status_code == 200


def test_only_loopback_addresses_are_allowed():
    with pytest.raises(ValueError):
        SimServer(host="0.0.0.0")
