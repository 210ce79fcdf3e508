"""The keystoneauth1 session of an AuthConfig, and the Keystone token kept between runs.

`make_session` builds the session (v3 auth plugin, TLS verification, timeouts),
`TokenCache` keeps the token of a credential set in a private directory and
`store_token` saves it after a successful request. Split from nova_auth.py, which
re-exports these names. keystoneauth1 is imported lazily.
"""
from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # keystoneauth1 stays a lazy import at run time; nova_auth imports this module
    from keystoneauth1.identity.base import BaseIdentityPlugin
    from keystoneauth1.session import Session

    from .nova_auth import AuthConfig


@dataclass(frozen=True)
class _Scope:
    """keystoneauth1's project scope arguments: an id as an id, a name with its domain (id or name)."""

    project_id: Optional[str] = None
    project_name: Optional[str] = None
    project_domain_id: Optional[str] = None
    project_domain_name: Optional[str] = None


def _project_scope(config: AuthConfig) -> _Scope:
    if config.project_id:
        return _Scope(project_id=config.project_id)
    if not config.project_name:
        return _Scope()
    if config.project_domain_id:
        return _Scope(project_name=config.project_name, project_domain_id=config.project_domain_id)
    return _Scope(project_name=config.project_name, project_domain_name=config.project_domain)


def make_session(config: AuthConfig) -> Session:
    """The keystoneauth1 session: v3 auth plugin, TLS verification, (connect, read) timeouts."""
    from keystoneauth1 import session as ks_session  # lazy
    from keystoneauth1.identity import v3

    scope = _project_scope(config)
    plugin: BaseIdentityPlugin
    if config.method == "application_credential":
        plugin = v3.ApplicationCredential(auth_url=config.auth_url,
                                          application_credential_id=config.application_credential_id,
                                          application_credential_secret=config.application_credential_secret)
    elif config.method == "token":
        plugin = v3.Token(auth_url=config.auth_url, token=config.token, project_id=scope.project_id,
                          project_name=scope.project_name, project_domain_id=scope.project_domain_id,
                          project_domain_name=scope.project_domain_name)
    else:
        plugin = v3.Password(auth_url=config.auth_url, username=config.username, password=config.password,
                             user_domain_id=config.user_domain_id or None,
                             user_domain_name=None if config.user_domain_id else config.user_domain,
                             project_id=scope.project_id, project_name=scope.project_name,
                             project_domain_id=scope.project_domain_id,
                             project_domain_name=scope.project_domain_name)
    if config.verify is False:
        import urllib3  # the operator asked for it; do not repeat the warning on every request

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    if config.token_cache:
        TokenCache(config.token_cache).load(plugin)
    sess = ks_session.Session(auth=plugin, verify=config.verify, user_agent="computeha")
    # keystoneauth1 stores one float; requests also takes a (connect, read) pair
    sess.timeout = (config.connect_timeout, config.api_timeout)  # type: ignore[assignment]  # keystoneauth1 annotates a float
    return sess


class TokenCache:
    """The Keystone token of a credential set, kept between runs (keystoneauth1 auth state).

    One file per credential set, named by keystoneauth1's cache id (a hash of the auth
    options, secrets included, so a changed password never reuses an old token).
    Expiry is keystoneauth1's business (a token close to expiry is renewed); a token
    revoked early gets a 401, which keystoneauth1 answers by authenticating once more.
    Every failure here only disables the cache for this run.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.loaded = ""

    def _path(self, plugin: BaseIdentityPlugin) -> Optional[str]:
        try:
            cache_id = plugin.get_cache_id()
        except Exception:
            return None
        if not cache_id:
            return None
        name = hashlib.sha256(cache_id.encode()).hexdigest()[:32]  # the id is base64: may contain '/'
        return os.path.join(self.directory, f"token-{name}.json")

    def _private_dir(self, create: bool) -> bool:
        try:
            if create and not os.path.isdir(self.directory):
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
            st = os.stat(self.directory)
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077

    def load(self, plugin: BaseIdentityPlugin) -> bool:
        path = self._path(plugin)
        if not path or not self._private_dir(create=False):
            return False
        try:
            with open(path, encoding="utf-8") as handle:
                data = handle.read()
            plugin.set_auth_state(data)
        except Exception:
            return False
        self.loaded = data
        return True

    def store(self, plugin: BaseIdentityPlugin) -> bool:
        """Write the plugin's current state if it changed (a new token was issued)."""
        path = self._path(plugin)
        if not path:
            return False
        try:
            data = plugin.get_auth_state()
        except Exception:
            return False
        if not data or data == self.loaded or not self._private_dir(create=True):
            return False
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return False
        self.loaded = data
        return True


def store_token(session: Any, config: AuthConfig) -> None:
    """After a successful authenticated request: keep the token for the next run."""
    if config.token_cache and getattr(session, "auth", None) is not None:
        TokenCache(config.token_cache).store(session.auth)
