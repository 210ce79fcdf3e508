"""keystoneauth1/requests exceptions and Nova's error bodies translated into the typed errors
of nova.py (one line, no secrets). Split from nova_client.py, which re-exports `translate`.
"""
from __future__ import annotations

from typing import Any

from .nova import (
    NovaAuthError,
    NovaBadRequest,
    NovaConflict,
    NovaError,
    NovaForbidden,
    NovaNotFound,
    NovaUnavailable,
)

_SERVER_ERR_KEYS = ("badRequest", "itemNotFound", "conflictingRequest", "forbidden", "computeFault",
                    "unauthorized", "overLimit", "NeutronError", "error")


def _error_text(response: Any) -> str:
    """Nova's own message from an error body, else the reason phrase."""
    try:
        body = response.json()
    except Exception:
        body = None
    if isinstance(body, dict):
        for key in _SERVER_ERR_KEYS:
            inner = body.get(key)
            if isinstance(inner, dict) and inner.get("message"):
                return str(inner["message"])
        if isinstance(body.get("error"), dict) and body["error"].get("message"):
            return str(body["error"]["message"])
        if body.get("message"):
            return str(body["message"])
    return str(getattr(response, "reason", "") or "")


def translate(err: Exception, what: str) -> NovaError:
    """keystoneauth1/requests exceptions -> typed Nova errors (one line, no secrets)."""
    from keystoneauth1 import exceptions as ks  # lazy

    if isinstance(err, NovaError):
        return err
    if isinstance(err, ks.HttpError):
        status = getattr(err, "http_status", None)
        response = getattr(err, "response", None)
        detail = _error_text(response) if response is not None else ""
        detail = detail or getattr(err, "message", "") or type(err).__name__
        text = f"{what}: HTTP {status}: {detail}"
        if status == 400:
            return NovaBadRequest(text, status)
        if status == 401:
            return NovaAuthError(f"{what}: authentication refused (HTTP 401): check the credentials", status)
        if status == 403:
            return NovaForbidden(f"{what}: forbidden (HTTP 403): the user needs the admin role", status)
        if status == 404:
            return NovaNotFound(text, status)
        if status == 409:
            return NovaConflict(text, status)
        if status is not None and (status >= 500 or status in (408, 429)):
            return NovaUnavailable(text, status)
        return NovaError(text, status)
    if isinstance(err, ks.SSLError):
        return NovaError(f"{what}: TLS verification failed (set cacert, or insecure=1 to skip it): "
                         f"{_short(err)}")
    if isinstance(err, ks.ConnectTimeout):
        return NovaUnavailable(f"{what}: timed out")
    if isinstance(err, (ks.ConnectionError, ks.ConnectFailure)):
        return NovaUnavailable(f"{what}: cannot connect: {_short(err)}")
    if isinstance(err, (ks.EndpointNotFound, ks.EmptyCatalog)):
        return NovaError(f"{what}: no such endpoint in the Keystone catalog (check region_name and "
                         f"endpoint_type): {_short(err)}")
    if isinstance(err, (ks.MissingRequiredOptions, ks.AuthPluginException, ks.DiscoveryFailure)):
        return NovaAuthError(f"{what}: cannot authenticate: {_short(err)}")
    if isinstance(err, ks.ClientException):
        return NovaError(f"{what}: {_short(err)}")
    return NovaError(f"{what}: {type(err).__name__}: {_short(err)}")


def _short(err: Exception) -> str:
    return " ".join(str(err).split())[:300]
