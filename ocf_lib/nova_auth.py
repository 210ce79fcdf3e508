"""Keystone credentials and the one keystoneauth1 session per process.

Shared by fence_compute, NovaEvacuate and NovaCompute: `AUTH_PARAMS` is the
parameter-table fragment (with the legacy fence_compute/NovaEvacuate names as
aliases), `AuthConfig.from_values` turns parsed values into a frozen config,
`make_session` (in keystone_session, re-exported here) builds the session.
Keystone v3 only: password (user and project domains), application credential,
or token; or `cloud=<name>` read from a clouds.yaml that must be private to its
owner.

keystoneauth1 and yaml are imported lazily, so that meta-data, usage and
validate-all at level 0 never load them.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlparse

# the session and token cache live in keystone_session; imported here as before
from .keystone_session import TokenCache as TokenCache
from .keystone_session import make_session as make_session
from .keystone_session import store_token as store_token
from .params import Kind, Param, ParamTable, Problem, Values

# endpoint_type spellings of the legacy agents (publicURL ...) and of clouds.yaml (public ...)
_INTERFACES = {"public": "public", "publicurl": "public", "internal": "internal", "internalurl": "internal",
               "admin": "admin", "adminurl": "admin"}

CLOUDS_YAML_PATHS = ("/etc/openstack/clouds.yaml",)
DEFAULT_TOKEN_CACHE = "/run/computeha/keystone"


def _check_interface(value: str) -> Optional[str]:
    if value.strip().lower() not in _INTERFACES:
        return "must be one of public, internal, admin (or publicURL, internalURL, adminURL)"
    return None


def _check_url(value: str) -> Optional[str]:
    try:
        parsed = urlparse(value.strip())
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return "must be an http:// or https:// URL"
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return "must be an http:// or https:// URL"
    if parsed.path.rstrip("/").endswith("/v2.0"):
        return "points to the Keystone v2.0 API, which is gone: use the v3 URL"
    return None


def _check_microversion(value: str) -> Optional[str]:
    try:
        parse_microversion(value)
    except ValueError:
        return "must look like 2.53"
    return None


AUTH_PARAMS = ParamTable([
    Param("auth_url", Kind.STRING, "Keystone v3 URL",
          "Keystone identity URL (v3 only; Keystone v2.0 no longer exists upstream), e.g. "
          "https://keystone.example.com:5000/v3. Not needed with cloud.", short_opt="k", metavar="url",
          check=_check_url),
    Param("username", Kind.STRING, "Keystone user name", aliases=("login",), short_opt="l", metavar="name"),
    Param("password", Kind.STRING, "Keystone password", aliases=("passwd",), short_opt="p", metavar="password",
          secret=True),
    Param("password_script", Kind.STRING, "Script that prints the Keystone password on its first line",
          aliases=("passwd_script",), short_opt="S", metavar="script"),
    Param("project_name", Kind.STRING, "Keystone project (tenant) to authenticate in",
          aliases=("tenant_name",), short_opt="t", metavar="project"),
    Param("user_domain", Kind.STRING, "Keystone domain of the user", default="Default",
          short_opt="u", metavar="domain", fence_spellings=("user-domain",)),
    Param("project_domain", Kind.STRING, "Keystone domain of the project", default="Default",
          short_opt="P", metavar="domain", fence_spellings=("project-domain",)),
    Param("application_credential_id", Kind.STRING, "Keystone application credential id (instead of a password)",
          metavar="id"),
    Param("application_credential_secret", Kind.STRING, "Keystone application credential secret",
          metavar="secret", secret=True),
    Param("token", Kind.STRING, "Keystone token (instead of a password; expires)", metavar="token", secret=True),
    Param("cloud", Kind.STRING, "Cloud name in clouds.yaml (instead of auth_url and credentials)",
          "Name of an entry of clouds.yaml holding auth_url, credentials, region, interface and CA "
          "settings. The file must be readable by its owner only.", metavar="name"),
    Param("clouds_yaml", Kind.STRING, "Path of clouds.yaml",
          "Path of the clouds.yaml used with cloud; default: OS_CLIENT_CONFIG_FILE, then "
          "/etc/openstack/clouds.yaml.", metavar="path"),
    Param("region_name", Kind.STRING, "Region of the Nova endpoint", metavar="region"),
    Param("endpoint_type", Kind.STRING, "Catalog interface of the Nova endpoint", default="internal",
          longdesc="Catalog interface of the Nova endpoint: public, internal or admin (the legacy "
          "publicURL/internalURL/adminURL spellings are accepted).",
          short_opt="e", metavar="interface", check=_check_interface),
    Param("insecure", Kind.BOOLEAN, "Skip TLS certificate verification (insecure=0 keeps it on)", default=False),
    Param("cacert", Kind.STRING, "CA bundle to verify Keystone and Nova TLS certificates with",
          metavar="path"),
    Param("connect_timeout", Kind.SECONDS, "Timeout for connecting to Keystone or Nova", default=5,
          minimum=0.1, metavar="seconds"),
    Param("api_timeout", Kind.SECONDS, "Timeout for one Keystone or Nova API answer", default=30,
          minimum=0.1, metavar="seconds"),
    Param("token_cache", Kind.STRING, "Directory for the cached Keystone token ('' disables the cache)",
          "Directory (root-only, on tmpfs by default) where the Keystone token is kept between runs, so that "
          "fencing reuses the token the periodic monitor refreshed instead of authenticating again. The file "
          "is a bearer token: mode 0600 in a 0700 directory, never logged. Empty disables the cache.",
          default=DEFAULT_TOKEN_CACHE, metavar="dir"),
    Param("nova_max_microversion", Kind.STRING, "Highest Nova API microversion to use (default: the cloud's)",
          "Cap on the Nova API microversion; normally empty (the cloud's maximum is detected once per run). "
          "Set to 2.52 or lower to force the pre-2.53 host/binary service calls.", metavar="version",
          check=_check_microversion),
])

AUTH_PARAM_NAMES = tuple(p.name for p in AUTH_PARAMS)


def parse_microversion(text: str) -> Tuple[int, int]:
    major, _, minor = text.strip().partition(".")
    if not major.isdigit() or not minor.isdigit():
        raise ValueError(text)
    return int(major), int(minor)


class AuthConfigError(Exception):
    """The credentials cannot be assembled (one line, no secrets)."""


@dataclass(frozen=True)
class AuthConfig:
    auth_url: str
    username: str = ""
    password: str = ""
    project_name: str = ""
    user_domain: str = "Default"
    project_domain: str = "Default"
    # clouds.yaml may name the project and the domains by id; an id is never sent as a name
    project_id: str = ""
    user_domain_id: str = ""
    project_domain_id: str = ""
    application_credential_id: str = ""
    application_credential_secret: str = ""
    token: str = ""
    region_name: str = ""
    interface: str = "internal"
    verify: Union[bool, str] = True  # True, False, or a CA bundle path
    connect_timeout: float = 5.0
    api_timeout: float = 30.0
    max_microversion: str = ""
    token_cache: str = ""

    @property
    def method(self) -> str:
        if self.application_credential_id or self.application_credential_secret:
            return "application_credential"
        if self.token:
            return "token"
        return "password"

    def __repr__(self) -> str:  # never show secrets, even in a debugger dump
        return (f"AuthConfig(auth_url={self.auth_url!r}, method={self.method}, username={self.username!r}, "
                f"project_name={self.project_name!r}, region_name={self.region_name!r}, "
                f"interface={self.interface!r}, verify={self.verify!r})")

    def problems(self) -> List[Problem]:
        found: List[Problem] = []
        if not self.auth_url:
            found.append(Problem("auth_url", "is required (or use cloud=<name> with a clouds.yaml)"))
        method = self.method
        if method == "password":
            if not self.username:
                found.append(Problem("username", "is required for password authentication"))
            if not self.password:
                found.append(Problem("password", "is required for password authentication "
                                                 "(or use password_script, an application credential or a token)"))
            if not self.project_name and not self.project_id:
                found.append(Problem("project_name", "is required (the project in which the user has the admin role)"))
        elif method == "application_credential":
            if not self.application_credential_id or not self.application_credential_secret:
                found.append(Problem("application_credential_id",
                                     "and application_credential_secret must both be set"))
        if isinstance(self.verify, str) and not os.path.isfile(self.verify):
            found.append(Problem("cacert", f"file {self.verify} does not exist"))
        return found

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "AuthConfig":
        """Config from parsed parameter values (with `cloud`, clouds.yaml fills what is unset)."""
        get = values.get

        def given(name: str) -> bool:
            if isinstance(values, Values):
                return values.given(name)
            return get(name) not in (None, "")

        base = cls(auth_url="")
        cloud = get("cloud")
        if cloud:
            base = load_cloud(cloud, get("clouds_yaml") or "")
        interface = base.interface
        if given("endpoint_type") or not get("cloud"):
            interface = _INTERFACES.get(str(get("endpoint_type") or "internal").strip().lower(), "internal")
        verify: Union[bool, str] = base.verify
        if get("cacert"):
            verify = str(get("cacert"))
        if get("insecure"):
            verify = False  # a real boolean: insecure=0 leaves verification on
        return replace(
            base,
            auth_url=str(get("auth_url") or base.auth_url).strip(),
            username=str(get("username") or base.username),
            password=str(get("password") or base.password),
            project_name=str(get("project_name") or base.project_name),
            user_domain=str(get("user_domain") if given("user_domain") or not get("cloud") else base.user_domain)
            or "Default",
            project_domain=str(get("project_domain") if given("project_domain") or not get("cloud")
                               else base.project_domain) or "Default",
            # a name given as a parameter wins over the clouds.yaml id of the same thing
            project_id="" if given("project_name") else base.project_id,
            user_domain_id="" if given("user_domain") else base.user_domain_id,
            project_domain_id="" if given("project_domain") or given("project_name") else base.project_domain_id,
            application_credential_id=str(get("application_credential_id") or base.application_credential_id),
            application_credential_secret=str(get("application_credential_secret")
                                              or base.application_credential_secret),
            token=str(get("token") or base.token),
            region_name=str(get("region_name") or base.region_name),
            interface=interface,
            verify=verify,
            connect_timeout=float(get("connect_timeout") or 5.0),
            api_timeout=float(get("api_timeout") or 30.0),
            max_microversion=str(get("nova_max_microversion") or ""),
            token_cache=str(get("token_cache") if get("token_cache") is not None else ""),
        )


def find_clouds_yaml(explicit: str = "", env: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if env is None else env
    candidates = [explicit] if explicit else [env.get("OS_CLIENT_CONFIG_FILE", "")]
    if not explicit:
        candidates.append(os.path.expanduser("~/.config/openstack/clouds.yaml"))
        candidates.extend(CLOUDS_YAML_PATHS)
    for path in candidates:
        if path and os.path.isfile(path):
            return path
    if explicit:
        raise AuthConfigError(f"clouds_yaml: file {explicit} does not exist")
    raise AuthConfigError("cloud: no clouds.yaml found (set clouds_yaml)")


def check_private(path: str) -> None:
    """clouds.yaml holds a password: refuse a file that others could read or write."""
    st = os.stat(path)
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuthConfigError(f"clouds_yaml: {path} is accessible to group/others "
                              f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it")
    if st.st_uid not in (0, os.geteuid()):
        raise AuthConfigError(f"clouds_yaml: {path} is owned by uid {st.st_uid}, not root")


def load_cloud(name: str, path: str = "") -> AuthConfig:
    """One clouds.yaml entry as an AuthConfig (pyyaml; the file must be private)."""
    path = find_clouds_yaml(path)
    check_private(path)
    import yaml  # lazy: only the cloud= path needs it

    try:
        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as err:
        raise AuthConfigError(f"clouds_yaml: cannot read {path}: {type(err).__name__}") from None
    clouds = doc.get("clouds") if isinstance(doc, dict) else None
    entry = clouds.get(name) if isinstance(clouds, dict) else None
    if not isinstance(entry, dict):
        raise AuthConfigError(f"cloud: no cloud named {name!r} in {path}")
    auth: Dict[str, Any] = entry.get("auth") or {}
    version = str(entry.get("identity_api_version", "3"))
    if not version.startswith("3"):
        raise AuthConfigError(f"cloud {name!r}: identity_api_version {version} is not supported (Keystone v3 only)")
    verify: Union[bool, str] = True
    if entry.get("cacert"):
        verify = str(entry["cacert"])
    if entry.get("verify") is False or entry.get("insecure") is True:
        verify = False
    return AuthConfig(
        auth_url=str(auth.get("auth_url", "")),
        username=str(auth.get("username", "")),
        password=str(auth.get("password", "")),
        project_name=str(auth.get("project_name") or auth.get("tenant_name") or ""),
        project_id=str(auth.get("project_id") or auth.get("tenant_id") or "") if not (
            auth.get("project_name") or auth.get("tenant_name")) else "",
        user_domain=str(auth.get("user_domain_name") or "Default"),
        user_domain_id=str(auth.get("user_domain_id") or "") if not auth.get("user_domain_name") else "",
        project_domain=str(auth.get("project_domain_name") or "Default"),
        project_domain_id=str(auth.get("project_domain_id") or "") if not auth.get("project_domain_name") else "",
        application_credential_id=str(auth.get("application_credential_id", "")),
        application_credential_secret=str(auth.get("application_credential_secret", "")),
        token=str(auth.get("token", "")),
        region_name=str(entry.get("region_name", "")),
        interface=_INTERFACES.get(str(entry.get("interface", "public")).lower(), "public"),
        verify=verify,
    )


def secrets_of(config: AuthConfig) -> List[str]:
    return [s for s in (config.password, config.application_credential_secret, config.token) if s]
