"""The real Nova adapter's HTTP plumbing against a small loopback HTTP stub.

These test OUR side (which URL, body and microversion header we send, how
answers and failures are translated); what Nova itself does is checked
against the real rig in tests/integration/test_nova_parity.py.
"""
from __future__ import annotations

import calendar
import dataclasses
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Tuple
from urllib.parse import parse_qs, urlparse

import pytest

from computeha.ocf_lib import nova_client
from computeha.ocf_lib.deadline import Deadline
from computeha.ocf_lib.nova import (
    NovaAuthError,
    NovaBadRequest,
    NovaConflict,
    NovaError,
    NovaForbidden,
    NovaNotFound,
    NovaUnavailable,
    Service,
)
from computeha.ocf_lib.nova_auth import AuthConfig
from computeha.ocf_lib.nova_client import NovaClient

Route = Callable[[Dict[str, Any]], Tuple[int, Any]]
SVC = {"id": "uuid-1", "host": "compute-0", "binary": "nova-compute", "state": "up", "status": "enabled",
       "forced_down": False, "disabled_reason": None, "updated_at": "2026-01-01T00:00:00.000000"}


class Stub:
    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.routes: Dict[Tuple[str, str], Route] = {}
        self.max_version = "2.100"
        self.token_status = 201
        self.issued: List[str] = []
        self.revoked: set = set()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _do(self):
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                req = {"method": self.command, "path": url.path, "query": parse_qs(url.query), "body": body,
                       "mv": self.headers.get("OpenStack-API-Version"), "token": self.headers.get("X-Auth-Token")}
                stub.requests.append(req)
                status, doc = stub.dispatch(req)
                data = json.dumps(doc).encode() if doc is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if url.path == "/v3/auth/tokens" and status == 201:
                    stub.issued.append(f"tok-{len(stub.issued) + 1}")
                    self.send_header("X-Subject-Token", stub.issued[-1])
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout tests)
                    pass

            do_GET = do_POST = do_PUT = _do

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def dispatch(self, req) -> Tuple[int, Any]:
        path = req["path"]
        if path == "/v3/auth/tokens":
            if self.token_status != 201:
                return self.token_status, {"error": {"message": "The request you have made requires authentication.",
                                                     "code": self.token_status}}
            return 201, {"token": {"expires_at": "2099-01-01T00:00:00.000000Z", "methods": ["password"],
                                   "catalog": [{"type": "compute", "endpoints": [
                                       {"interface": "internal", "region": "R", "region_id": "R",
                                        "url": self.url + "/v2.1"}]}],
                                   "project": {"id": "p", "name": "admin", "domain": {"id": "default"}},
                                   "user": {"id": "u", "name": "admin", "domain": {"id": "default"}}}}
        if req["token"] in self.revoked:
            return 401, {"error": {"message": "token revoked", "code": 401}}
        if path in ("/v2.1/", "/v2.1"):
            return 200, {"version": {"id": "v2.1", "version": self.max_version, "min_version": "2.1"}}
        route = self.routes.get((req["method"], path))
        if route is None:
            return 404, {"itemNotFound": {"message": f"no route {path}", "code": 404}}
        return route(req)

    def nova_requests(self) -> List[Dict[str, Any]]:
        return [r for r in self.requests if r["path"].startswith("/v2.1")]


@pytest.fixture
def stub():
    nova_client._MAX_MV_CACHE.clear()
    s = Stub()
    yield s
    s.server.shutdown()
    s.server.server_close()


def client(stub: Stub, **kw) -> NovaClient:
    config = AuthConfig(auth_url=stub.url + "/v3", username="admin", password="pw-secret", project_name="admin",
                        region_name="R", interface="internal", api_timeout=kw.pop("api_timeout", 5.0))
    return NovaClient.from_config(config, **kw) if "deadline" in kw else NovaClient.from_config(config)


def test_microversion_detected_once_per_process(stub):
    stub.routes[("GET", "/v2.1/os-services")] = lambda r: (200, {"services": [SVC]})
    first = client(stub)
    assert first.max_microversion() == "2.100"
    first.compute_services()
    second = client(stub)
    second.compute_services()
    assert [r["path"] for r in stub.requests].count("/v2.1/") == 1
    services = [r for r in stub.requests if r["path"] == "/v2.1/os-services"]
    assert all(r["mv"] == "compute 2.53" for r in services)
    assert services[0]["query"] == {"binary": ["nova-compute"]}


def test_services_by_id_at_2_53(stub):
    stub.routes[("GET", "/v2.1/os-services")] = lambda r: (200, {"services": [SVC]})
    stub.routes[("PUT", "/v2.1/os-services/uuid-1")] = lambda r: (200, {"service": dict(SVC, **r["body"])})
    nova = client(stub)
    svc = nova.compute_services("compute-0")[0]
    down = nova.force_down(svc, True)
    assert down.forced_down
    nova.set_enabled(down, False, "computeha: x")
    puts = [r for r in stub.requests if r["method"] == "PUT"]
    assert [r["body"] for r in puts] == [{"forced_down": True},
                                         {"status": "disabled", "disabled_reason": "computeha: x"}]
    assert all(r["mv"] == "compute 2.53" for r in puts)


@pytest.mark.parametrize("cloud_max,cap", [("2.40", ""), ("2.100", "2.52")])
def test_services_by_host_before_2_53(stub, cloud_max, cap):
    stub.max_version = cloud_max
    state = dict(SVC, id=7)
    stub.routes[("GET", "/v2.1/os-services")] = lambda r: (200, {"services": [state]})

    def force(r):
        state["forced_down"] = r["body"]["forced_down"]
        return 200, {"service": {"host": r["body"]["host"], "binary": "nova-compute", "forced_down": True}}

    def disable(r):
        state.update(status="disabled", disabled_reason=r["body"]["disabled_reason"])
        return 200, {"service": {"host": "compute-0", "binary": "nova-compute", "status": "disabled"}}

    stub.routes[("PUT", "/v2.1/os-services/force-down")] = force
    stub.routes[("PUT", "/v2.1/os-services/disable-log-reason")] = disable
    config = AuthConfig(auth_url=stub.url + "/v3", username="a", password="pw-secret", project_name="p",
                        region_name="R", max_microversion=cap)
    nova = NovaClient.from_config(config)
    svc = nova.compute_services("compute-0")[0]
    assert svc.id == "7"
    svc = nova.force_down(svc, True)
    assert svc.forced_down and svc.state == "up"  # re-read from the listing
    svc = nova.set_enabled(svc, False, "computeha: old")
    assert svc.disabled_reason == "computeha: old"
    puts = [r for r in stub.requests if r["method"] == "PUT"]
    assert [r["body"] for r in puts] == [
        {"host": "compute-0", "binary": "nova-compute", "forced_down": True},
        {"host": "compute-0", "binary": "nova-compute", "disabled_reason": "computeha: old"}]
    assert all(r["mv"] == "compute 2.11" for r in puts)


def test_too_old_cloud(stub):
    stub.max_version = "2.10"
    with pytest.raises(NovaError, match="too old"):
        client(stub).compute_services()


def test_unknown_host_is_an_empty_list(stub):
    stub.routes[("GET", "/v2.1/os-services")] = lambda r: (200, {"services": []})
    assert client(stub).compute_services("nope") == []


def test_evacuate_and_lists_use_stated_microversions(stub):
    stub.routes[("POST", "/v2.1/servers/s1/action")] = lambda r: (200, None)
    stub.routes[("GET", "/v2.1/os-migrations")] = lambda r: (200, {"migrations": [
        {"id": 3, "instance_uuid": "s1", "source_compute": "compute-0", "dest_compute": "compute-1",
         "status": "done", "migration_type": "evacuation", "created_at": "t"},
        {"id": 4, "instance_uuid": "s2", "source_compute": "compute-9", "dest_compute": "compute-1",
         "status": "done", "migration_type": "evacuation", "created_at": "t"}]})
    page2 = {"servers": [{"id": "b", "OS-EXT-SRV-ATTR:host": "compute-0", "status": "ACTIVE",
                          "flavor": {"original_name": "m1", "extra_specs": {"evacuable": "true"}}, "image": ""}]}
    page1 = {"servers": [{"id": "a", "OS-EXT-SRV-ATTR:host": "compute-0", "status": "SHUTOFF", "image": {"id": "i"},
                          "tags": ["t"], "OS-EXT-STS:task_state": None, "OS-EXT-STS:power_state": 4}],
             "servers_links": [{"rel": "next", "href": stub.url + "/v2.1/servers/detail?marker=a"}]}
    stub.routes[("GET", "/v2.1/servers/detail")] = lambda r: (200, page2 if "marker" in r["query"] else page1)
    nova = client(stub)
    nova.evacuate("s1")
    nova.evacuate("s1", "compute-2")
    posts = [r for r in stub.requests if r["method"] == "POST" and r["path"].startswith("/v2.1")]
    assert [r["body"] for r in posts] == [{"evacuate": {}}, {"evacuate": {"host": "compute-2"}}]
    assert {r["mv"] for r in posts} == {"compute 2.94"}  # newest that keeps the power state
    migs = nova.migrations(source_host="compute-0")
    assert [m.id for m in migs] == ["3"]  # filtered again on our side
    mig_req = [r for r in stub.requests if r["path"] == "/v2.1/os-migrations"][0]
    assert mig_req["mv"] == "compute 2.80"
    assert mig_req["query"] == {"migration_type": ["evacuation"], "source_compute": ["compute-0"]}
    servers = nova.servers_on_host("compute-0")
    assert [(s.id, s.image_id, s.flavor_extra_specs, s.tags) for s in servers] == [
        ("a", "i", {}, ("t",)), ("b", "", {"evacuable": "true"}, ())]


def test_migrations_created_after_stops_paging_at_older_records(stub):
    """Nova 2.59+ lists newest first: a host's long evacuation history is not read on every poll."""
    def row(i: int, minute: int) -> dict:
        return {"id": i, "instance_uuid": f"s{i}", "source_compute": "compute-0", "dest_compute": "compute-1",
                "status": "done", "migration_type": "evacuation", "created_at": f"2026-11-21T10:{minute:02d}:00.000000"}
    newest = [row(300 - i, 59 - i // 10) for i in range(100)]  # 10:59 .. 10:50
    older = [row(200 - i, 49 - i // 10) for i in range(100)]  # 10:49 .. 10:40
    oldest = [row(100 - i, 39 - i // 10) for i in range(100)]

    def answer(r):
        pages = {"": newest, "201": older, "101": oldest}
        marker = (r["query"].get("marker") or [""])[0]
        page = pages[marker]
        nxt = str(page[-1]["id"])
        links = [{"rel": "next", "href": f"{stub.url}/v2.1/os-migrations?limit=100&marker={nxt}"}] if nxt != "1" else []
        return 200, {"migrations": page, "migrations_links": links}
    stub.routes[("GET", "/v2.1/os-migrations")] = answer
    nova = client(stub)
    bound = calendar.timegm((2026, 11, 21, 10, 45, 0, 0, 0, 0))
    migs = nova.migrations(source_host="compute-0", created_after=bound)
    listings = [r for r in stub.requests if r["path"] == "/v2.1/os-migrations"]
    assert len(listings) == 2  # the second page reaches back before the bound: no third request
    assert listings[0]["query"]["limit"] == ["100"]
    assert len(migs) == 200 and all(m.source_compute == "compute-0" for m in migs)
    # without the bound every page is read
    assert len(nova.migrations(source_host="compute-0")) == 300
    assert len([r for r in stub.requests if r["path"] == "/v2.1/os-migrations"]) == 2 + 3


@pytest.mark.parametrize("status,body,error,text", [
    (400, {"badRequest": {"message": "Compute service of compute-0 is still in use.", "code": 400}},
     NovaBadRequest, "still in use"),
    (403, {"forbidden": {"message": "Policy doesn't allow", "code": 403}}, NovaForbidden, "admin role"),
    (404, {"itemNotFound": {"message": "Instance x could not be found.", "code": 404}}, NovaNotFound, "could not"),
    (409, {"conflictingRequest": {"message": "Cannot 'evacuate' instance", "code": 409}}, NovaConflict, "Cannot"),
    (500, {"computeFault": {"message": "boom", "code": 500}}, NovaUnavailable, "boom"),
    (503, None, NovaUnavailable, "HTTP 503"),
])
def test_http_errors_are_typed(stub, status, body, error, text):
    stub.routes[("POST", "/v2.1/servers/x/action")] = lambda r: (status, body)
    with pytest.raises(error, match=text) as info:
        client(stub).evacuate("x")
    assert info.value.status == status and "\n" not in str(info.value)


def test_keystone_401_is_auth_error(stub):
    stub.token_status = 401
    with pytest.raises(NovaAuthError, match="401"):
        client(stub).check()


def test_read_timeout_and_deadline(stub):
    def slow(r):
        time.sleep(1.0)
        return 200, {"services": []}

    stub.routes[("GET", "/v2.1/os-services")] = slow
    nova = client(stub, api_timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(NovaUnavailable, match="timed out"):
        nova.compute_services()
    assert nova.session.timeout[1] == pytest.approx(0.3)
    assert time.monotonic() - t0 < 0.9  # did not wait for the slow answer
    expired = client(stub, deadline=Deadline(0))
    with pytest.raises(NovaUnavailable, match="no time left"):
        expired.compute_services()


def test_connection_refused_is_unavailable():
    nova_client._MAX_MV_CACHE.clear()
    config = AuthConfig(auth_url="http://127.0.0.1:9/v3", username="a", password="pw-secret", project_name="p")
    with pytest.raises(NovaUnavailable, match="cannot connect"):
        NovaClient.from_config(config).check()


def test_service_from_listing_is_frozen():
    svc = nova_client._service(SVC)
    assert isinstance(svc, Service) and svc.disabled_reason == ""
    with pytest.raises(dataclasses.FrozenInstanceError):
        svc.host = "other"  # type: ignore[misc]


def test_fencing_is_one_put_at_2_53(stub):
    stub.routes[("GET", "/v2.1/os-services")] = lambda r: (200, {"services": [SVC]})
    stub.routes[("PUT", "/v2.1/os-services/uuid-1")] = lambda r: (200, {"service": dict(SVC, **r["body"])})
    nova = client(stub)
    svc = nova.force_down_and_disable(nova.compute_services("compute-0")[0], "computeha: fenced")
    assert svc.forced_down and svc.status == "disabled" and svc.disabled_reason == "computeha: fenced"
    puts = [r for r in stub.requests if r["method"] == "PUT"]
    assert [r["body"] for r in puts] == [{"forced_down": True, "status": "disabled",
                                          "disabled_reason": "computeha: fenced"}]


def test_token_cache_reuses_the_token_between_runs(stub, tmp_path):
    cache = tmp_path / "cache"
    stub.routes[("GET", "/v2.1/os-services")] = lambda r: (200, {"services": [SVC]})
    config = AuthConfig(auth_url=stub.url + "/v3", username="admin", password="pw-secret", project_name="admin",
                        region_name="R", interface="internal", token_cache=str(cache))
    NovaClient.from_config(config).compute_services()
    files = list(cache.iterdir())
    assert len(stub.issued) == 1 and len(files) == 1
    assert (cache.stat().st_mode & 0o777, files[0].stat().st_mode & 0o777) == (0o700, 0o600)
    assert "pw-secret" not in files[0].read_text() and files[0].name.startswith("token-")
    NovaClient.from_config(config).compute_services()  # a new "process": no new token
    assert len(stub.issued) == 1
    assert [r["token"] for r in stub.nova_requests()][-1] == "tok-1"
    # another password is another credential set: its own token
    other = AuthConfig(**{**config.__dict__, "password": "pw-other"})
    NovaClient.from_config(other).compute_services()
    assert len(stub.issued) == 2 and len(list(cache.iterdir())) == 2
    # a revoked cached token: keystoneauth1 authenticates once more, the cache gets the new one
    stub.revoked.add("tok-1")
    NovaClient.from_config(config).compute_services()
    assert len(stub.issued) == 3
    NovaClient.from_config(config).compute_services()
    assert len(stub.issued) == 3 and stub.nova_requests()[-1]["token"] == "tok-3"


def test_token_cache_ignored_in_a_shared_directory(stub, tmp_path):
    cache = tmp_path / "shared"
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    stub.routes[("GET", "/v2.1/os-services")] = lambda r: (200, {"services": [SVC]})
    config = AuthConfig(auth_url=stub.url + "/v3", username="admin", password="pw-secret", project_name="admin",
                        region_name="R", interface="internal", token_cache=str(cache))
    NovaClient.from_config(config).compute_services()
    NovaClient.from_config(config).compute_services()
    assert list(cache.iterdir()) == [] and len(stub.issued) == 2


def test_check_always_authenticates_and_refreshes_the_cache(stub, tmp_path):
    stub.routes[("GET", "/v2.1/os-services")] = lambda r: (200, {"services": [SVC]})
    config = AuthConfig(auth_url=stub.url + "/v3", username="admin", password="pw-secret", project_name="admin",
                        region_name="R", interface="internal", token_cache=str(tmp_path / "c"))
    NovaClient.from_config(config).check()
    NovaClient.from_config(config).check()
    assert len(stub.issued) == 2  # monitor never trusts a cached token
    NovaClient.from_config(config).compute_services()
    assert len(stub.issued) == 2 and stub.nova_requests()[-1]["token"] == "tok-2"  # fencing reuses the newest
