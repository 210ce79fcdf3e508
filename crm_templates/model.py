"""The site model: what an operator (or a deployment tool) writes in SITE.yaml.

`load_site(data)` turns the parsed YAML into frozen dataclasses (defined in
site_records.py, re-exported here), or raises `SiteError` listing every problem
at once, each naming the field by its path (`computes[3].bmc.address: is
required`). Unknown keys are errors too: a typo must not silently drop a setting.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypedDict

from .site_reader import ID_PATTERN, Reader, kind_of, zero_duration
from .site_records import Agents, Bmc, Cloud, Compute, Controller, Evacuation, Kdump, Reserved, Secret, Site, SiteNode


class SiteError(Exception):
    """Every problem found in a site model, one `path: message` per line."""

    def __init__(self, problems: List[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _secret(r: Reader, key: str, script_allowed: bool = True) -> Optional[Secret]:
    """`password: TEXT`, `password_script: CMD` or `password_cib_secret: true`: exactly one."""
    forms = [k for k in (key, f"{key}_script", f"{key}_cib_secret") if r.data.get(k) not in (None, False)]
    if len(forms) > 1:
        r.problems.append(f"{r.at(forms[1])}: set only one of {', '.join(forms)}")
        return None
    if not forms:
        return None
    if forms[0] == key:
        text = r.string(key)
        return Secret(inline=text) if text is not None else None
    if forms[0].endswith("_script"):
        if not script_allowed:
            r.problems.append(f"{r.at(forms[0])}: not supported here (use a clouds.yaml cloud or {key}_cib_secret)")
            return None
        text = r.string(forms[0])
        return Secret(script=text) if text is not None else None
    if not r.boolean(forms[0], False):
        return None
    return Secret(cib_secret=True)


def _bmc(problems: List[str], path: str, data: Any) -> Optional[Bmc]:
    r = Reader(problems, path, data, ("address", "port", "username", "password", "password_script",
                                       "password_cib_secret", "lanplus", "cipher"))
    if not r.ok:
        return None
    address = r.string("address", required=True)
    username = r.string("username", required=True)
    secret = _secret(r, "password")
    if secret is None and not any(r.has(k) for k in ("password", "password_script", "password_cib_secret")):
        problems.append(f"{path}.password_script: a BMC password is required "
                        f"(password_script, password_cib_secret or password)")
    port = r.integer("port", 623, minimum=1, maximum=65535)
    lanplus = r.boolean("lanplus", True)
    cipher = r.integer("cipher", 3, minimum=0, maximum=17)
    if address is None or username is None or secret is None:
        return None
    return Bmc(address, username, secret, int(port or 623), lanplus, cipher)


_CLOUD_FIELDS = ("cloud", "clouds_yaml", "auth_url", "username", "password", "password_script", "password_cib_secret",
                 "project_name",
                 "user_domain", "project_domain", "region_name", "endpoint_type", "insecure")


class _CloudCommon(TypedDict):
    """The Cloud fields read the same way for a clouds.yaml entry and explicit credentials."""

    region_name: Optional[str]
    endpoint_type: Optional[str]
    insecure: bool


def _cloud(problems: List[str], data: Any) -> Cloud:
    r = Reader(problems, "cloud", data, _CLOUD_FIELDS)
    if not r.ok:
        return Cloud()
    name = r.string("cloud")
    explicit = [k for k in ("auth_url", "username", "password", "password_script", "password_cib_secret",
                            "project_name") if r.has(k)]
    endpoint_type = r.string("endpoint_type")
    if endpoint_type is not None and endpoint_type not in ("public", "internal", "admin",
                                                           "publicURL", "internalURL", "adminURL"):
        problems.append(f"cloud.endpoint_type: {endpoint_type!r} is not one of public, internal, admin")
    common = _CloudCommon(region_name=r.string("region_name"), endpoint_type=endpoint_type,
                          insecure=r.boolean("insecure", False))
    if name is not None:
        if explicit:
            problems.append(f"cloud.{explicit[0]}: set either cloud (a clouds.yaml entry) or explicit credentials, "
                            f"not both")
        return Cloud(cloud=name, clouds_yaml=r.string("clouds_yaml"), **common)
    if not explicit:
        problems.append("cloud.cloud: is required (a clouds.yaml cloud name), or give auth_url, username, "
                        "password_cib_secret/password and project_name")
        return Cloud(**common)
    auth_url = r.string("auth_url", required=True)
    if auth_url is not None and not auth_url.startswith(("http://", "https://")):
        problems.append(f"cloud.auth_url: {auth_url!r} is not an http(s) URL")
    if r.has("clouds_yaml"):
        problems.append("cloud.clouds_yaml: only used together with cloud (a clouds.yaml entry name)")
    secret = _secret(r, "password")
    if secret is None and not any(r.has(k) for k in ("password", "password_script", "password_cib_secret")):
        problems.append("cloud.password_script: a password is required (password_script, password_cib_secret "
                        "or password)")
    return Cloud(auth_url=auth_url, username=r.string("username", required=True), password=secret,
                 project_name=r.string("project_name", required=True),
                 user_domain=r.string("user_domain", default="Default"),
                 project_domain=r.string("project_domain", default="Default"), **common)


def _evacuation(problems: List[str], data: Any) -> Evacuation:
    if data is None:
        return Evacuation()
    r = Reader(problems, "evacuation", data, ("shared_storage", "local_disk_policy", "selection", "marker",
                                               "exclude_projects", "exclude_images", "max_parallel",
                                               "max_parallel_per_host", "stagger", "delay"))
    if not r.ok:
        return Evacuation()
    return Evacuation(shared_storage=r.boolean("shared_storage", False),
                      local_disk_policy=r.choice("local_disk_policy", ("rebuild", "skip")),
                      selection=r.choice("selection", ("auto", "marked", "all")),
                      marker=r.string("marker"),
                      exclude_projects=r.strings("exclude_projects"), exclude_images=r.strings("exclude_images"),
                      max_parallel=r.integer("max_parallel", None, minimum=1, maximum=256),
                      max_parallel_per_host=r.integer("max_parallel_per_host", None, minimum=0, maximum=256),
                      stagger=r.integer("stagger", None, minimum=0), delay=r.integer("delay", None, minimum=0))


def _reserved(problems: List[str], data: Any) -> Optional[Reserved]:
    if data is None:
        return None
    r = Reader(problems, "reserved_hosts", data, ("aggregate", "hosts"))
    if not r.ok:
        return None
    aggregate = r.string("aggregate", required=True)
    hosts = r.strings("hosts")
    return Reserved(aggregate, hosts) if aggregate is not None else None


def _kdump(problems: List[str], data: Any) -> Optional[Kdump]:
    if data is None or data is False:
        return None
    if data is True:
        return Kdump()
    r = Reader(problems, "fence_kdump", data, ("timeout", "nodename_check"))
    if not r.ok:
        return None
    return Kdump(timeout=int(r.integer("timeout", 60, minimum=1) or 60),
                 nodename_check=r.boolean("nodename_check", True))


def _items(problems: List[str], data: Mapping[str, Any], key: str,
           read: Callable[[List[str], str, Any], Any], required: bool = True) -> List[Any]:
    value = data.get(key)
    if value is None:
        if required:
            problems.append(f"{key}: is required (a list)")
        return []
    if not isinstance(value, list) or (required and not value):
        problems.append(f"{key}: must be a non-empty list, got {kind_of(value)}")
        return []
    return [read(problems, f"{key}[{i}]", item) for i, item in enumerate(value)]


def _controller(problems: List[str], path: str, data: Any) -> Optional[Controller]:
    r = Reader(problems, path, data, ("name", "nodeid", "bmc"))
    if not r.ok:
        return None
    name = r.string("name", required=True, pattern=ID_PATTERN, what="a valid node name")
    nodeid = r.integer("nodeid", None, minimum=1)
    bmc = _bmc(problems, f"{path}.bmc", data["bmc"]) if r.has("bmc") else None
    if name is None:
        return None
    return Controller(name, int(nodeid) if nodeid is not None else 0, bmc)


def _compute(problems: List[str], path: str, data: Any) -> Optional[Compute]:
    r = Reader(problems, path, data, ("name", "address", "nova_host", "bmc"))
    if not r.ok:
        return None
    name = r.string("name", required=True, pattern=ID_PATTERN, what="a valid node name")
    address = r.string("address", default=name)
    nova_host = r.string("nova_host", default=name)
    if not r.has("bmc"):
        problems.append(f"{path}.bmc: is required (compute nodes are power-fenced through their BMC)")
        return None
    bmc = _bmc(problems, f"{path}.bmc", data["bmc"])
    if name is None or bmc is None:
        return None
    return Compute(name, str(address), str(nova_host), bmc)


_SITE_FIELDS = ("name", "controllers", "computes", "cloud", "evacuation", "fence_kdump", "reserved_hosts",
                "control_plane_services", "role_attribute", "recheck_interval", "remote_port",
                "reconnect_interval", "remote_monitor_interval", "remote_monitor_timeout", "agents")


def load_site(data: Any) -> Site:
    """Validate a parsed site document; raise SiteError with every problem."""
    problems: List[str] = []
    r = Reader(problems, "", data, _SITE_FIELDS)
    if not r.ok:
        raise SiteError(problems)
    name = r.string("name", default="site", pattern=ID_PATTERN, what="a valid name")
    controllers = _items(problems, r.data, "controllers", _controller)
    computes = _items(problems, r.data, "computes", _compute)
    cloud = _cloud(problems, r.data.get("cloud")) if r.has("cloud") else None
    if cloud is None:
        problems.append("cloud: is required (Keystone credentials for fence_compute and the agents)")
    evacuation = _evacuation(problems, r.data.get("evacuation"))
    kdump = _kdump(problems, r.data.get("fence_kdump"))
    agents_r = Reader(problems, "agents", r.data.get("agents") or {}, ("provider", "fence_ipmi", "fence_compute"))
    agents = Agents(provider=str(agents_r.string("provider", default="computeha", pattern=ID_PATTERN,
                                                 what="a provider name")),
                    fence_ipmi=str(agents_r.string("fence_ipmi", default="fence_ipmi", pattern=ID_PATTERN,
                                                   what="an agent name")),
                    fence_compute=str(agents_r.string("fence_compute", default="fence_compute", pattern=ID_PATTERN,
                                                      what="an agent name")))
    site_kwargs: Dict[str, Any] = dict(
        reserved=_reserved(problems, r.data.get("reserved_hosts")),
        control_plane_services=tuple(_checked_ids(problems, "control_plane_services",
                                                  r.strings("control_plane_services"))),
        role_attribute=str(r.string("role_attribute", default="computeha-role", pattern=ID_PATTERN,
                                    what="an attribute name")),
        recheck_interval=r.duration("recheck_interval", "1min"),
        remote_port=int(r.integer("remote_port", 3121, minimum=1, maximum=65535) or 3121),
        reconnect_interval=r.duration("reconnect_interval", "60s"),
        remote_monitor_interval=r.duration("remote_monitor_interval", "20s"),
        remote_monitor_timeout=r.duration("remote_monitor_timeout", "40s"),
    )
    for key in ("remote_monitor_interval", "remote_monitor_timeout"):
        if zero_duration(str(site_kwargs[key])):
            problems.append(f"{key}: must be longer than 0 (how long a silent compute goes unnoticed)")
    reserved = site_kwargs["reserved"]
    _cross_checks(problems, [c for c in controllers if c], [c for c in computes if c],
                  reserved.hosts if reserved is not None else ())
    if problems:
        raise SiteError(problems)
    # corosync node ids default to the position in the list (as in a nodelist without nodeid)
    numbered = tuple(c if c.nodeid else Controller(c.name, i + 1, c.bmc) for i, c in enumerate(controllers))
    assert cloud is not None
    return Site(name=str(name), controllers=numbered, computes=tuple(computes), cloud=cloud, evacuation=evacuation,
                kdump=kdump, agents=agents, **site_kwargs)


def _checked_ids(problems: List[str], key: str, names: Tuple[str, ...]) -> List[str]:
    for i, name in enumerate(names):
        if not ID_PATTERN.match(name):
            problems.append(f"{key}[{i}]: {name!r} is not a valid resource id")
    return list(names)


def _cross_checks(problems: List[str], controllers: List[Controller], computes: List[Compute],
                  reserved: Tuple[str, ...]) -> None:
    seen: Dict[str, str] = {}
    groups: Tuple[Tuple[str, Sequence[SiteNode]], ...] = (("controllers", controllers), ("computes", computes))
    for kind, nodes in groups:
        for i, node in enumerate(nodes):
            path = f"{kind}[{i}].name"
            if node.name in seen:
                problems.append(f"{path}: {node.name!r} is already used by {seen[node.name]}")
            else:
                seen[node.name] = path
    ids: Dict[int, str] = {}
    for i, node in enumerate(controllers):
        if node.nodeid:
            if node.nodeid in ids:
                problems.append(f"controllers[{i}].nodeid: {node.nodeid} is already used by {ids[node.nodeid]}")
            ids[node.nodeid] = f"controllers[{i}]"
    hosts: Dict[str, str] = {}
    for i, node in enumerate(computes):
        if node.nova_host in hosts:
            problems.append(f"computes[{i}].nova_host: {node.nova_host!r} is already used by {hosts[node.nova_host]}")
        hosts[node.nova_host] = f"computes[{i}]"
    known = {c.name for c in computes} | {c.nova_host for c in computes}
    for i, host in enumerate(reserved):
        if host not in known:
            problems.append(f"reserved_hosts.hosts[{i}]: {host!r} is not one of the computes")


def inline_secrets(site: Site) -> List[str]:
    """Paths of passwords given inline (validate warns about them)."""
    found = []
    groups: Tuple[Tuple[str, Sequence[SiteNode]], ...] = (("controllers", site.controllers),
                                                          ("computes", site.computes))
    for kind, nodes in groups:
        for i, node in enumerate(nodes):
            if node.bmc is not None and node.bmc.password.is_inline:
                found.append(f"{kind}[{i}].bmc.password")
    if site.cloud.password is not None and site.cloud.password.is_inline:
        found.append("cloud.password")
    return found
