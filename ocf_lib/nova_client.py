"""The real Nova adapter: plain REST over the keystoneauth1 session.

No python-novaclient: each call states its microversion next to it, the
cloud's maximum is read once per process from the compute version document,
and every client error is translated (nova_http_errors.py) into the typed errors of `nova.py`.
Every request has a (connect, read) timeout, the read part also capped by the
caller's deadline.

Service calls: 2.53+ address a service by id (`PUT /os-services/{id}`); clouds
older than 2.53 (down to 2.11, where force-down appeared) use the host+binary
forms `PUT /os-services/force-down|disable-log-reason|enable`.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .deadline import Deadline
from .nova import (
    Aggregate,
    Image,
    Migration,
    NovaError,
    NovaNotFound,
    NovaUnavailable,
    Server,
    Service,
    nova_time,
)
from .nova_auth import AuthConfig, make_session, parse_microversion, store_token
from .nova_http_errors import translate as translate
from .nova_json import next_link as _next_link
from .nova_json import parse_image as _image
from .nova_json import parse_migration as _migration
from .nova_json import parse_server as _server
from .nova_json import parse_service as _service

MV_FORCE_DOWN_BY_HOST = (2, 11)  # PUT /os-services/force-down (2.11-2.52)
MV_SERVICE_BY_ID = (2, 53)  # PUT /os-services/{id}, ids are UUIDs
MV_EVACUATE_KEEPS_STATE = (2, 94)  # 2.95+ leaves evacuated servers SHUTOFF: stay at or below 2.94
MV_EVACUATE_NO_SHARED_STORAGE_FLAG = (2, 14)  # onSharedStorage removed from the evacuate body
MV_FLAVOR_EMBEDDED = (2, 47)  # server shows carry the flavor (with extra specs)
MV_FLAVOR_EXTRA_SPECS = (2, 61)  # flavor listings carry their extra specs
MV_MIGRATIONS = (2, 80)  # uuid, changes-since (2.59), user/project ids (2.80)
MV_CHANGES_SINCE = (2, 59)  # also: migrations listed newest first, limit/marker paging
MIGRATION_PAGE = 100

COMPUTE_BINARY = "nova-compute"

# detected max microversion per compute endpoint: "once per process"
_MAX_MV_CACHE: Dict[str, Tuple[int, int]] = {}


def mv_text(version: Tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


class NovaClient:
    """`computeha.ocf_lib.nova.Nova` over a keystoneauth1 session."""

    def __init__(self, session: Any, region_name: str = "", interface: str = "internal",
                 max_microversion: str = "", connect_timeout: float = 5.0, api_timeout: float = 30.0,
                 deadline: Optional[Deadline] = None) -> None:
        self.session = session
        self.region_name = region_name or None
        self.interface = interface
        self._cap = parse_microversion(max_microversion) if max_microversion else None
        self.connect_timeout = connect_timeout
        self.api_timeout = api_timeout
        self.deadline = deadline
        self._endpoints: Dict[str, str] = {}
        self._max: Optional[Tuple[int, int]] = None
        self.requests = 0  # for benchmarks and tests
        self.config: Optional[AuthConfig] = None
        self._token_stored = False

    @classmethod
    def from_config(cls, config: AuthConfig, deadline: Optional[Deadline] = None) -> "NovaClient":
        client = cls(make_session(config), config.region_name, config.interface, config.max_microversion,
                     config.connect_timeout, config.api_timeout, deadline)
        client.config = config
        return client

    # --- plumbing ---------------------------------------------------------------
    def _timeout(self, what: str) -> Tuple[float, float]:
        read = self.api_timeout
        if self.deadline is not None:
            left = self.deadline.remaining()
            if left <= 0:
                raise NovaUnavailable(f"{what}: timed out (no time left before the deadline)")
            read = min(read, left)
        return (min(self.connect_timeout, read), read)

    def endpoint(self, service_type: str = "compute") -> str:
        if service_type not in self._endpoints:
            what = f"{service_type} endpoint lookup"
            try:
                self.session.timeout = self._timeout(what)  # the token request honours it too
                url = self.session.get_endpoint(service_type=service_type, interface=self.interface,
                                                region_name=self.region_name)
            except Exception as err:
                raise translate(err, what) from None
            if not url:
                raise NovaError(f"{what}: no {service_type} endpoint with interface {self.interface}"
                                + (f" in region {self.region_name}" if self.region_name else ""))
            self._endpoints[service_type] = url.rstrip("/")
        return self._endpoints[service_type]

    def _call(self, method: str, path: str, what: str, mv: Optional[Tuple[int, int]] = None,
              body: Optional[Dict[str, Any]] = None, params: Optional[Mapping[str, Any]] = None,
              service_type: str = "compute") -> Any:
        url = path if path.startswith("http") else self.endpoint(service_type) + path
        headers = {"Accept": "application/json"}
        if mv is not None:
            headers["OpenStack-API-Version"] = f"compute {mv_text(mv)}"
            headers["X-OpenStack-Nova-API-Version"] = mv_text(mv)
        self.requests += 1
        try:
            self.session.timeout = self._timeout(what)
            response = self.session.request(url, method, json=body, params=dict(params or {}), headers=headers,
                                            connect_retries=0, log=False)
        except Exception as err:
            raise translate(err, what) from None
        if not self._token_stored and self.config is not None:
            self._token_stored = True  # the token just worked for Nova: worth keeping
            store_token(self.session, self.config)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise NovaUnavailable(f"{what}: answer is not JSON (HTTP {response.status_code})") from None

    # --- microversions --------------------------------------------------------------
    def _max_mv(self) -> Tuple[int, int]:
        if self._max is None:
            endpoint = self.endpoint()
            cloud = _MAX_MV_CACHE.get(endpoint)
            if cloud is None:
                doc = self._call("GET", "/", "Nova version discovery")  # unversioned request
                version = doc.get("version") if isinstance(doc, dict) else None
                if not isinstance(version, dict) and isinstance(doc, dict):
                    listed = [v for v in doc.get("versions") or [] if v.get("id") == "v2.1"]
                    version = listed[0] if listed else None
                if not isinstance(version, dict):
                    raise NovaError("Nova version discovery: no v2.1 version document at the compute endpoint")
                text = version.get("version") or ""
                cloud = parse_microversion(text) if text else (2, 1)
                _MAX_MV_CACHE[endpoint] = cloud
            self._max = min(cloud, self._cap) if self._cap else cloud
        return self._max

    def max_microversion(self) -> str:
        return mv_text(self._max_mv())

    def _mv(self, wanted: Tuple[int, int]) -> Tuple[int, int]:
        return min(self._max_mv(), wanted)

    def _services_mv(self) -> Tuple[int, int]:
        top = self._max_mv()
        if top >= MV_SERVICE_BY_ID:
            return MV_SERVICE_BY_ID
        if top >= MV_FORCE_DOWN_BY_HOST:
            return MV_FORCE_DOWN_BY_HOST
        raise NovaError(f"Nova API {mv_text(top)} is too old: force-down needs microversion 2.11")

    # --- Nova protocol -----------------------------------------------------------------
    def check(self) -> None:
        """Keystone issues a NEW token for the credentials (a cached one proves nothing about
        them) and Nova lists compute services with it (admin). The new token is then cached,
        so a periodic monitor keeps the cache warm for fencing."""
        try:
            self.session.timeout = self._timeout("Keystone authentication")
            auth = getattr(self.session, "auth", None)
            if auth is not None and hasattr(auth, "invalidate"):
                auth.invalidate()
            self.session.get_token()
        except Exception as err:
            raise translate(err, "Keystone authentication") from None
        self.compute_services()

    def compute_services(self, host: Optional[str] = None) -> List[Service]:
        params = {"binary": COMPUTE_BINARY}
        if host:
            params["host"] = host
        doc = self._call("GET", "/os-services", "listing compute services", self._services_mv(), params=params)
        services = [_service(s) for s in doc.get("services") or []]
        # the host filter is exact in Nova; keep it exact even if a proxy ignores it
        return [s for s in services if s.binary == COMPUTE_BINARY and (host is None or s.host == host)]

    def _refetch(self, service: Service) -> Service:
        found = self.compute_services(service.host)
        if len(found) != 1:
            raise NovaNotFound(f"compute service of {service.host} not found after update")
        return found[0]

    def force_down(self, service: Service, down: bool) -> Service:
        what = f"{'forcing down' if down else 'clearing forced_down of'} {service.host}"
        mv = self._services_mv()
        if mv >= MV_SERVICE_BY_ID:  # 2.53: by id
            doc = self._call("PUT", f"/os-services/{service.id}", what, mv, body={"forced_down": bool(down)})
            return _service(doc["service"]) if doc.get("service", {}).get("host") else self._refetch(service)
        # 2.11-2.52: by host and binary; the answer is partial, read the service back
        self._call("PUT", "/os-services/force-down", what, mv,
                   body={"host": service.host, "binary": service.binary, "forced_down": bool(down)})
        return self._refetch(service)

    def force_down_and_disable(self, service: Service, reason: str) -> Service:
        """Fencing in one request at 2.53+: Nova saves forced_down and the disabled status
        together, then sees the service down and skips the RPC to the dead compute (the
        reason the legacy agent had to force down before disabling). Two calls before 2.53."""
        mv = self._services_mv()
        if mv >= MV_SERVICE_BY_ID:
            doc = self._call("PUT", f"/os-services/{service.id}", f"fencing {service.host}", mv,
                             body={"forced_down": True, "status": "disabled", "disabled_reason": reason[:255]})
            return _service(doc["service"]) if doc.get("service", {}).get("host") else self._refetch(service)
        return self.set_enabled(self.force_down(service, True), False, reason)

    def set_enabled(self, service: Service, enabled: bool, reason: str = "") -> Service:
        what = f"{'enabling' if enabled else 'disabling'} {service.host}"
        mv = self._services_mv()
        if mv >= MV_SERVICE_BY_ID:  # 2.53: by id, disabled_reason only with status disabled
            body: Dict[str, Any] = {"status": "enabled" if enabled else "disabled"}
            if not enabled and reason:
                body["disabled_reason"] = reason[:255]
            doc = self._call("PUT", f"/os-services/{service.id}", what, mv, body=body)
            return _service(doc["service"]) if doc.get("service", {}).get("host") else self._refetch(service)
        if enabled:  # 2.11-2.52
            self._call("PUT", "/os-services/enable", what, mv, body={"host": service.host, "binary": service.binary})
        elif reason:
            self._call("PUT", "/os-services/disable-log-reason", what, mv,
                       body={"host": service.host, "binary": service.binary, "disabled_reason": reason[:255]})
        else:
            self._call("PUT", "/os-services/disable", what, mv, body={"host": service.host, "binary": service.binary})
        return self._refetch(service)

    def _pages(self, path: str, key: str, what: str, mv: Optional[Tuple[int, int]], params: Mapping[str, Any],
               service_type: str = "compute", max_pages: int = 1000,
               enough: Optional[Callable[[List[Dict[str, Any]]], bool]] = None) -> List[Dict[str, Any]]:
        """Every page of a listing, or fewer: `enough(page)` true ends it after that page."""
        items: List[Dict[str, Any]] = []
        doc = self._call("GET", path, what, mv, params=params, service_type=service_type)
        for _ in range(max_pages):
            page = doc.get(key) or []
            items.extend(page)
            if enough is not None and enough(page):
                break
            nxt = _next_link(doc, key, self.endpoint(service_type) if service_type == "image" else "")
            if not nxt:
                break
            doc = self._call("GET", nxt, what, mv, service_type=service_type)
        return items

    def servers_on_host(self, host: str) -> List[Server]:
        mv = self._mv(MV_EVACUATE_KEEPS_STATE)  # >= 2.47 embeds the flavor with its extra specs
        rows = self._pages("/servers/detail", "servers", f"listing servers on {host}", mv,
                           {"all_tenants": 1, "host": host})
        return [_server(r) for r in rows if r.get("OS-EXT-SRV-ATTR:host") == host]

    def server(self, server_id: str) -> Server:
        mv = self._mv(MV_EVACUATE_KEEPS_STATE)
        return _server(self._call("GET", f"/servers/{server_id}", f"reading server {server_id}", mv)["server"])

    def evacuate(self, server_id: str, target_host: Optional[str] = None) -> None:
        mv = self._mv(MV_EVACUATE_KEEPS_STATE)  # 2.68-2.94: {} or {"host"}; keeps the power state
        body: Dict[str, Any] = {}
        if target_host:
            body["host"] = target_host
        if mv < MV_EVACUATE_NO_SHARED_STORAGE_FLAG:
            body["onSharedStorage"] = False
        self._call("POST", f"/servers/{server_id}/action", f"evacuating server {server_id}", mv,
                   body={"evacuate": body})

    def migrations(self, source_host: Optional[str] = None, instance_uuid: Optional[str] = None,
                   migration_type: str = "evacuation", changes_since: Optional[str] = None,
                   created_after: Optional[float] = None) -> List[Migration]:
        mv = self._mv(MV_MIGRATIONS)
        params: Dict[str, Any] = {}
        enough: Optional[Callable[[List[Dict[str, Any]]], bool]] = None
        if created_after is not None and mv >= MV_CHANGES_SINCE:
            # 2.59+ lists newest first: small pages, and stop at the first page reaching back before
            # created_after. A host's evacuation history only grows (every failure adds one record per
            # instance), and listing all of it on every confirmation poll costs nova-api more each time.
            params["limit"] = MIGRATION_PAGE

            def reaches_back(page: List[Dict[str, Any]], bound: float = created_after) -> bool:
                oldest = nova_time(str(page[-1].get("created_at") or "")) if page else 0.0
                return not page or 0 < oldest < bound
            enough = reaches_back
        if migration_type:
            params["migration_type"] = migration_type
        if source_host:
            params["source_compute"] = source_host
        if instance_uuid:
            params["instance_uuid"] = instance_uuid
        if changes_since and mv >= MV_CHANGES_SINCE:
            params["changes-since"] = changes_since
        rows = self._pages("/os-migrations", "migrations", "listing migrations", mv, params, enough=enough)
        found = [_migration(r) for r in rows]
        # filter again: older Nova ignores some of these query parameters
        return [m for m in found if (not source_host or m.source_compute == source_host)
                and (not instance_uuid or m.instance_uuid == instance_uuid)
                and (not migration_type or m.migration_type == migration_type)]

    def images_with_tag(self, tag: str) -> List[Image]:
        rows = self._pages("/v2/images", "images", f"listing images tagged {tag}", None, {"tag": tag},
                           service_type="image")
        return [_image(r) for r in rows if tag in (r.get("tags") or [])]

    def flavors_with_extra_spec(self, key: str) -> Dict[str, str]:
        """Every flavor, public or private, whose extra specs have `key`: flavor name -> value."""
        mv = self._mv(MV_FLAVOR_EXTRA_SPECS)
        rows = self._pages("/flavors/detail", "flavors", "listing flavors", mv, {"is_public": "None"})
        found: Dict[str, str] = {}
        for row in rows:
            specs = row.get("extra_specs")
            if specs is None:  # below 2.61: one extra-specs read per flavor
                specs = self._call("GET", f"/flavors/{row.get('id')}/os-extra_specs", "reading flavor extra specs",
                                   mv).get("extra_specs") or {}
            if key in specs:
                found[str(row.get("name") or row.get("id"))] = str(specs[key])
        return found

    def aggregates(self) -> List[Aggregate]:
        doc = self._call("GET", "/os-aggregates", "listing aggregates", self._mv((2, 41)))
        return [Aggregate(id=str(a.get("id")), name=str(a.get("name") or ""), hosts=tuple(a.get("hosts") or ()),
                          metadata={str(k): str(v) for k, v in (a.get("metadata") or {}).items()})
                for a in doc.get("aggregates") or []]
