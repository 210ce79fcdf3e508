"""How NovaCompute reaches Nova: the credential parameters and the adapter factory.

The credential fragment and the adapter belong to the shared Nova adapter
(ocf_lib/nova_auth.py, ocf_lib/nova_client.py); this module is the one place
NovaCompute binds to them, imported lazily so that meta-data and a level-0
monitor never load keystoneauth1 or novaclient.
"""
from __future__ import annotations

import logging
from typing import Any

from computeha.ocf_lib.exitcodes import AgentError, Ocf
from computeha.ocf_lib.params import Kind, Param, ParamTable, Values

try:  # the shared fragment, once the adapter is installed alongside
    from computeha.ocf_lib.nova_auth import CREDENTIALS as _SHARED  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - interim until the shared fragment lands
    _SHARED = None

CREDENTIALS: ParamTable = _SHARED if _SHARED is not None else ParamTable([
    Param("cloud", Kind.STRING, "Cloud name in clouds.yaml (preferred over the parameters below)", default=""),
    Param("auth_url", Kind.STRING, "Keystone URL", default=""),
    Param("username", Kind.STRING, "Keystone user", default="", aliases=("login",)),
    Param("password", Kind.STRING, "Keystone password", default="", secret=True, aliases=("passwd",)),
    Param("project_name", Kind.STRING, "Keystone project", default="", aliases=("tenant_name",)),
    Param("user_domain", Kind.STRING, "Keystone user domain", default="Default"),
    Param("project_domain", Kind.STRING, "Keystone project domain", default="Default"),
    Param("region_name", Kind.STRING, "Region", default=""),
    Param("endpoint_type", Kind.SELECT, "Catalog interface", choices=("public", "internal", "admin"),
          default="internal"),
    Param("insecure", Kind.BOOLEAN, "Skip TLS certificate verification", default=False),
])


def nova_factory(values: Values, log: logging.Logger) -> Any:
    """A Nova adapter (computeha.ocf_lib.nova.Nova) for these parameters."""
    try:
        from computeha.ocf_lib import nova_client  # type: ignore[attr-defined]
    except ImportError as err:
        raise AgentError(f"the Nova adapter is not installed: {err}", Ocf.ERR_INSTALLED) from None
    return nova_client.from_values(values, log)  # type: ignore[attr-defined]
