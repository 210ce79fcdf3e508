"""IPMI adapter: chassis power over RMCP+ (lanplus) with python-ipmi.

python-ipmi >= 0.6.0 speaks RMCP+ natively (interface ``rmcpplus``), so no
ipmitool subprocess is needed and the password never appears on a command
line. ``lanplus=False`` uses python-ipmi's IPMI 1.5 interface (``rmcp``).
pyipmi is imported only when a session is opened: metadata, usage and idle
monitor paths import this module without paying for it.

Every network operation (open, each get/set, close) is bounded by the
``timeout`` given to :func:`open_session`; the caller owns the overall
action deadline and re-polls within one session.
"""
from __future__ import annotations

import logging
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, TypeVar

POWER_STATES = ("on", "off")
PRIVILEGES = ("user", "operator", "administrator")
# The BMC (ipmb 0x20) answers the chassis commands.
_BMC_IPMB_ADDRESS = 0x20
# Retransmit a lost UDP request at most this often within one operation.
# (like ipmitool's -R/-N); a slow BMC may then run a command twice, which
# is harmless for status and power on/off.
_MAX_ATTEMPTS = 4
_MIN_ATTEMPT_SECONDS = 2.0

# RMCP+ open-session status codes meaning "not these algorithms" (IPMI v2.0
# table 13-15): the BMC does not support the requested cipher suite.
_MSC_ALGORITHM_REJECTED = (0x04, 0x05, 0x06, 0x07, 0x10, 0x11)

T = TypeVar("T")


@dataclass(frozen=True)
class BmcTarget:
    """Where and how to log in to one BMC. repr() never shows secrets."""

    host: str
    port: int = 623
    username: str = ""
    password: str = field(default="", repr=False)
    kg_key: Optional[bytes] = field(default=None, repr=False)
    cipher: int = 3
    privilege: str = "administrator"
    lanplus: bool = True

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class IpmiError(Exception):
    """An IPMI action failed. str() is one line and never holds a secret."""

    def __init__(self, reason: str, target: Optional[BmcTarget] = None) -> None:
        text = " ".join(str(reason).split())
        if target is not None:
            text = _scrub(f"BMC {target}: {text}", target)
        super().__init__(text)
        self.reason = text


class IpmiUnreachable(IpmiError):
    """Nothing answers at the address (refused, no route, no RMCP pong)."""


class IpmiAuthError(IpmiError):
    """The BMC answered but refused the login (user, password, K_g, role)."""


class IpmiTimeout(IpmiError):
    """The BMC answered the ping but not a later request in time."""


class IpmiProtocolError(IpmiError):
    """Unsupported cipher suite or IPMI version, malformed or refused request."""


class PowerDevice(Protocol):
    """What the fence logic needs from a power controller."""

    def get_power(self) -> str: ...  # "on" | "off"

    def set_power(self, state: str) -> None: ...  # "on" | "off"

    def power_cycle(self) -> None: ...

    def close(self) -> None: ...


def _scrub(text: str, target: BmcTarget) -> str:
    for secret in (target.password, target.kg_key):
        if secret:
            s = secret.decode(errors="replace") if isinstance(secret, bytes) else secret
            text = text.replace(s, "****")
    return text


class _NoSessionDump(logging.Filter):
    """python-ipmi 0.6 logs the whole Session object, password included, at
    debug level when it closes a session. Drop such records."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return "Password:" not in record.getMessage()
        except Exception:  # a record that cannot be formatted is not ours to pass
            return False


_SESSION_DUMP_FILTER = _NoSessionDump()


def _guard_pyipmi_logging() -> None:
    for name in ("pyipmi.interfaces.rmcp", "pyipmi.interfaces.rmcpplus"):
        logger = logging.getLogger(name)
        if _SESSION_DUMP_FILTER not in logger.filters:
            logger.addFilter(_SESSION_DUMP_FILTER)


class _DeadlineSocket:
    """Wraps python-ipmi's UDP socket so that no recv() outlives the deadline.

    python-ipmi applies its timeout per message (and per retry); the session
    set-up alone sends five. Clamping each recv to the time left bounds the
    whole operation instead.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._per_try = 1.0
        self.deadline = time.monotonic() + self._per_try

    def settimeout(self, value: Optional[float]) -> None:
        self._per_try = value if value is not None else 1.0

    def recv(self, size: int) -> bytes:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline reached")
        self._sock.settimeout(min(self._per_try, left))
        return self._sock.recv(size)

    def __getattr__(self, name: str) -> Any:  # send, connect, close, ...
        return getattr(self._sock, name)


def _translate(exc: BaseException, target: BmcTarget, doing: str,
               timeout: float) -> IpmiError:
    """Map a python-ipmi or socket exception to one typed, one-line error."""
    from pyipmi import errors as pe  # already imported when we get here

    if isinstance(exc, IpmiError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, pe.IpmiConnectionError):
        if "refused" in str(exc):
            return IpmiUnreachable(f"connection refused while {doing} "
                                   "(no BMC listening on this UDP port)", target)
        return IpmiUnreachable(f"no answer to RMCP ping within {timeout:g}s "
                               "(check host, port and network)", target)
    if isinstance(exc, (TimeoutError, socket.timeout, pe.RetryError)) \
            and doing == "opening the session" and not target.lanplus:
        return IpmiTimeout(f"no answer within {timeout:g}s while opening the IPMI 1.5 "
                           "session (1.5 BMCs stay silent on a wrong password)", target)
    if isinstance(exc, ConnectionRefusedError):
        return IpmiUnreachable(f"connection refused while {doing}", target)
    if isinstance(exc, (TimeoutError, socket.timeout, pe.RetryError, pe.IpmiTimeoutError)):
        return IpmiTimeout(f"no answer from the BMC within {timeout:g}s while {doing}",
                           target)
    if isinstance(exc, OSError):  # gaierror, EHOSTUNREACH, ENETUNREACH
        return IpmiUnreachable(f"{exc.strerror or exc} while {doing}", target)
    if isinstance(exc, pe.IpmiLongPasswordError):
        return IpmiAuthError("password longer than 20 bytes", target)
    if isinstance(exc, pe.AuthenticationError):
        text = str(exc)
        if "RAKP message 2" in text:
            return IpmiAuthError("login refused: wrong password "
                                 f"(RAKP 2 authentication code mismatch, user "
                                 f"{target.username!r})", target)
        if "RAKP message 4" in text:
            return IpmiAuthError("login refused: wrong K_g key "
                                 "(RAKP 4 integrity check failed)", target)
        if "user name" in text:
            return IpmiAuthError(text, target)
        return IpmiProtocolError(f"{text} while {doing}", target)
    if isinstance(exc, pe.MessageStatusCodeError):
        if exc.msc in _MSC_ALGORITHM_REJECTED:
            return IpmiProtocolError(f"BMC does not support cipher suite {target.cipher} "
                                     f"({exc.msc_desc})", target)
        if exc.msc == 0x0F:  # invalid integrity check value: wrong password
            return IpmiAuthError(f"login refused: wrong password ({exc.msc_desc})", target)
        if exc.msc in (0x09, 0x0A, 0x0B, 0x0C, 0x0D):  # role / user name
            return IpmiAuthError(f"login refused for user {target.username!r} with "
                                 f"privilege {target.privilege} ({exc.msc_desc})", target)
        return IpmiProtocolError(f"session set-up refused: {exc.msc_desc}", target)
    if isinstance(exc, pe.NotSupportedError):
        return IpmiProtocolError(f"not supported: {exc}", target)
    if isinstance(exc, pe.CompletionCodeError):
        if doing == "opening the session":
            # IPMI 1.5 login and Set Session Privilege answer with codes.
            return IpmiAuthError(f"login refused: {exc.cc_desc} (cc=0x{exc.cc:02x})",
                                 target)
        return IpmiProtocolError(f"BMC refused {doing}: {exc.cc_desc} "
                                 f"(cc=0x{exc.cc:02x})", target)
    if isinstance(exc, struct.error) and not target.lanplus:  # python-ipmi 1.5 login
        return IpmiProtocolError("IPMI 1.5 login failed: the BMC offers no IPMI 1.5 "
                                 "authentication type (lanplus-only BMC? use lanplus)",
                                 target)
    return IpmiProtocolError(f"unexpected {name} while {doing}: {exc}", target)


class IpmiPowerDevice:
    """One authenticated session with a BMC; implements PowerDevice."""

    def __init__(self, target: BmcTarget, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if target.privilege not in PRIVILEGES:
            raise ValueError(f"privilege must be one of {', '.join(PRIVILEGES)}")
        self.target = target
        self.timeout = timeout
        self._ipmi: Any = None
        self._intf: Any = None
        self._sock: Optional[_DeadlineSocket] = None
        self._answering = True  # False after a timeout: skip Close Session

    # -- plumbing -----------------------------------------------------------
    def _arm(self) -> None:
        """Start the clock for one operation: per-try timeout and retries."""
        assert self._sock is not None
        attempts = max(1, min(_MAX_ATTEMPTS, int(self.timeout // _MIN_ATTEMPT_SECONDS)))
        self._sock.deadline = time.monotonic() + self.timeout
        self._intf.max_retries = attempts - 1
        self._intf.set_timeout(self.timeout / attempts)

    def _run(self, doing: str, fn: Callable[[], T]) -> T:
        if self._ipmi is None:
            raise IpmiProtocolError("session is closed", self.target)
        self._arm()
        try:
            return fn()
        except Exception as exc:  # translated at the boundary, one line
            err = _translate(exc, self.target, doing, self.timeout)
            if isinstance(err, (IpmiTimeout, IpmiUnreachable)):
                self._answering = False
            raise err from None

    def open(self) -> "IpmiPowerDevice":
        import pyipmi
        import pyipmi.interfaces

        _guard_pyipmi_logging()
        t = self.target
        try:
            if t.lanplus:
                intf = pyipmi.interfaces.create_interface(
                    "rmcpplus", keep_alive_interval=0, max_retries=0,
                    cipher_suite=t.cipher, kg=t.kg_key or None)
            else:
                intf = pyipmi.interfaces.create_interface(
                    "rmcp", keep_alive_interval=0, max_retries=0)
        except Exception as exc:  # e.g. cipher suite unknown to python-ipmi
            raise _translate(exc, t, "creating the interface", self.timeout) from None
        ipmi = pyipmi.create_connection(intf)
        ipmi.session.set_session_type_rmcp(t.host, port=t.port)
        ipmi.session.set_auth_type_user(t.username, t.password)
        ipmi.session.set_priv_level(t.privilege)
        ipmi.target = pyipmi.Target(ipmb_address=_BMC_IPMB_ADDRESS)
        intf.open()  # creates the UDP socket; the session is set up below
        # python-ipmi 0.6 keeps the socket in ``_sock`` and pings only once;
        # both are adapted here so that the whole login obeys the deadline.
        self._sock = _DeadlineSocket(intf._sock)
        intf._sock = self._sock
        intf.ping = self._ping_until_deadline(intf.ping)
        self._ipmi, self._intf = ipmi, intf
        try:
            self._run("opening the session", ipmi.session.establish)
        except IpmiError:
            self._close_socket()
            raise
        return self

    def _ping_until_deadline(self, ping: Callable[[], None]) -> Callable[[], None]:
        def retrying_ping() -> None:
            from pyipmi.errors import IpmiConnectionError

            assert self._sock is not None
            while True:
                try:
                    return ping()
                except IpmiConnectionError as exc:
                    # "refused" is final; a lost ping is worth resending
                    if "refused" in str(exc) or time.monotonic() >= self._sock.deadline:
                        raise
        return retrying_ping

    def _close_socket(self) -> None:
        intf, self._intf, self._ipmi = self._intf, None, None
        if intf is not None:
            try:
                intf.close()
            except OSError:
                pass

    # -- PowerDevice --------------------------------------------------------
    def get_power(self) -> str:
        status = self._run("reading the chassis status", self._ipmi.get_chassis_status)
        return "on" if status.power_on else "off"

    def set_power(self, state: str) -> None:
        if state not in POWER_STATES:
            raise ValueError(f"power state must be 'on' or 'off', not {state!r}")
        fn = (self._ipmi.chassis_control_power_up if state == "on"
              else self._ipmi.chassis_control_power_down)
        self._run(f"requesting power {state}", fn)

    def power_cycle(self) -> None:
        self._run("requesting a power cycle", self._ipmi.chassis_control_power_cycle)

    def close(self) -> None:
        """Close the session (best effort, bounded) and the socket. Idempotent."""
        if self._ipmi is None:
            return
        try:
            if self._answering:
                self._run("closing the session", self._intf.close_session)
        except IpmiError:
            pass  # the BMC drops idle sessions itself
        finally:
            self._close_socket()

    def __enter__(self) -> "IpmiPowerDevice":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_session(target: BmcTarget, timeout: float) -> IpmiPowerDevice:
    """Log in to the BMC; raises an IpmiError subclass within ~timeout seconds.

    Use one session per fence action (set, then poll on the same session) and
    close it, e.g. ``with open_session(t, 5) as dev: dev.set_power("off")``.
    """
    return IpmiPowerDevice(target, timeout).open()
