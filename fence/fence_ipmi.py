"""fence_ipmi: verified power fencing over IPMI 2.0 (RMCP+/lanplus) with python-ipmi.

A thin FenceAgent over ``computeha.ocf_lib.ipmi``: the library owns the
protocol (stdin/argv, validation, the set-then-poll state machine, exit codes);
this module maps fence_ipmilan's parameters onto a BmcTarget and the adapter's
typed errors onto one-line failures. One IPMI session per action carries the
initial read, the power request and every confirmation poll, and is closed at
the end. pyipmi is imported only when a session is opened (metadata, usage and
validate-all stay light).

Named fence_ipmi so that it clashes with nothing fence-agents installs; an
existing fence_ipmilan resource keeps its attributes (ipaddr, login, passwd,
lanplus, cipher, privlvl, ...) when only its type is changed.
"""
from __future__ import annotations

import logging
import string
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Optional, TypeVar

from computeha.ocf_lib import fence, ipmi
from computeha.ocf_lib.deadline import DeadlineExceeded
from computeha.ocf_lib.fence import FenceContext, FenceError
from computeha.ocf_lib.params import Kind, Param, ParamTable, Problem, Values

T = TypeVar("T")

# Cipher suites python-ipmi's rmcpplus interface implements (IPMI 2.0 table 22-20;
# suite 0, no authentication, is deliberately absent).
CIPHER_SUITES = (1, 2, 3, 15, 16, 17)
# IPMI 2.0 passwords and K_g keys are at most 20 bytes.
MAX_SECRET_BYTES = 20
# Below this many seconds left there is no point starting an IPMI exchange.
MIN_OP_SECONDS = 0.2
# How often a power cycle is watched for its OFF phase (cycle is brief).
CYCLE_WATCH_INTERVAL = 0.05

_COMPAT = "Accepted for compatibility with fence_ipmilan and ignored"


def _check_cipher(value: int) -> Optional[str]:
    if value not in CIPHER_SUITES:
        return "cipher suite must be one of " + ", ".join(map(str, CIPHER_SUITES))
    return None


def _check_kg(value: str) -> Optional[str]:
    text = value.strip()
    if text.lower().startswith("0x"):
        text = text[2:]
    if not text or any(c not in string.hexdigits for c in text) or len(text) % 2:
        return "must be an even number of hexadecimal digits"
    if len(text) // 2 > MAX_SECRET_BYTES:
        return f"must be at most {MAX_SECRET_BYTES} bytes ({2 * MAX_SECRET_BYTES} hex digits)"
    return None


def kg_bytes(value: Optional[str]) -> Optional[bytes]:
    if not value or not value.strip():
        return None
    text = value.strip()
    return bytes.fromhex(text[2:] if text.lower().startswith("0x") else text)


IPMI_PARAMS = ParamTable([
    Param("ip", Kind.STRING, "IP address or hostname of the BMC", aliases=("ipaddr",), short_opt="a",
          metavar="ip"),
    Param("ipport", Kind.INTEGER, "UDP port of the BMC's RMCP service", default=623, minimum=1,
          maximum=65535, short_opt="u", metavar="port"),
    Param("username", Kind.STRING, "BMC user name", aliases=("login",), short_opt="l", metavar="name"),
    Param("password", Kind.STRING, "BMC password (at most 20 bytes)", aliases=("passwd",), short_opt="p",
          metavar="password", secret=True),
    Param("password_script", Kind.STRING, "Script that prints the BMC password on its first line",
          aliases=("passwd_script",), short_opt="S", metavar="script"),
    Param("lanplus", Kind.BOOLEAN, "Use IPMI 2.0 RMCP+ (lanplus); 0 falls back to IPMI 1.5",
          default=True, short_opt="P"),
    Param("cipher", Kind.INTEGER, "RMCP+ cipher suite (3: HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128)",
          default=3, short_opt="C", metavar="cipher", check=_check_cipher),
    Param("privlvl", Kind.SELECT, "Privilege level of the session",
          choices=("callback", "user", "operator", "administrator"), default="administrator",
          short_opt="L", metavar="level"),
    Param("hexadecimal_kg", Kind.STRING, "Hexadecimal-encoded K_g (BMC key) for IPMI 2.0 authentication",
          secret=True, metavar="key", check=_check_kg),
    Param("method", Kind.SELECT,
          "Reboot method: onoff (off, confirm OFF, on) or cycle (one chassis power cycle; "
          "OFF must still be seen)", choices=("onoff", "cycle"), default="onoff", short_opt="m",
          metavar="method"),
    Param("port_as_ip", Kind.BOOLEAN, "Use the plug (the node name or pcmk_host_map value) as the BMC "
          "address, as fence_ipmilan does", default=False),
    Param("target", Kind.STRING, "IPMI bridging target address: not supported, rejected when set",
          metavar="targetaddress"),
    Param("auth", Kind.STRING, f"IPMI 1.5 authentication type. {_COMPAT} (negotiated)", metavar="auth"),
    Param("ipmitool_path", Kind.STRING, f"{_COMPAT} (no ipmitool is run)", metavar="path"),
    Param("ipmitool_timeout", Kind.STRING, f"{_COMPAT} (login_timeout bounds each IPMI request)",
          metavar="timeout"),
    Param("use_sudo", Kind.BOOLEAN, f"{_COMPAT} (no ipmitool is run)", aliases=("sudo",)),
    Param("sudo_path", Kind.STRING, f"{_COMPAT} (no ipmitool is run)", metavar="path"),
    Param("retry_on", Kind.STRING, f"{_COMPAT} (retries are bounded by the deadline)", metavar="attempts"),
])


class _Session:
    """One IPMI session for one fence action, with per-request timeouts
    clamped to the action's deadline."""

    def __init__(self, dev: Any, ctx: FenceContext, op_timeout: float) -> None:
        self.dev = dev
        self.ctx = ctx
        self.op_timeout = op_timeout
        # method=cycle: OFF seen after our power cycle request, reported once
        self.cycle_off_seen = False

    def call(self, fn: Callable[[], T]) -> T:
        left = self.ctx.deadline.remaining()
        if left < MIN_OP_SECONDS:
            raise DeadlineExceeded("no time left for another IPMI request")
        # The adapter arms every request with dev.timeout; keep it inside the deadline.
        self.dev.timeout = min(self.op_timeout, left)
        try:
            return fn()
        except ipmi.IpmiError as err:
            raise FenceError(str(err)) from None

    def power(self) -> str:
        return self.call(self.dev.get_power)


class IpmiFence(fence.FenceAgent):
    name = "fence_ipmi"
    shortdesc = "Fence agent for IPMI 2.0 (lanplus) BMCs with verified power off"
    longdesc = (
        "fence_ipmi powers a machine off, on or through a reboot via its BMC over IPMI 2.0 RMCP+ "
        "(lanplus, cipher suite 3 by default), natively with python-ipmi: no ipmitool, no password on "
        "any command line. Every power change is confirmed by polling the BMC's chassis power state "
        "in the same session until it matches (bounded by power_timeout); a BMC that accepts off but "
        "keeps reporting on makes the action fail. power_wait defaults to 0 because polling replaces "
        "sleeping. fence_ipmilan's parameter names are accepted, so an existing device can switch by "
        "changing only its type. One BMC controls one machine and there is no list action: configure "
        "pcmk_host_list=<node> on the device. The plug is ignored unless port_as_ip is set.")
    vendor_url = ""  # IPMI is a standard, not one vendor's product (fence_ipmilan leaves it empty too)
    has_plug = True  # Pacemaker passes plug=<node>; used only with port_as_ip
    has_list = False
    table = IPMI_PARAMS

    # --- configuration ---------------------------------------------------------------
    def validate(self, values: Values, plug: str) -> List[Problem]:
        problems: List[Problem] = []
        if not self._host(values):
            problems.append(Problem("ip", "is required (or port_as_ip with a plug)"))
        if values.get("target"):
            problems.append(Problem("target", "IPMI bridging is not supported by fence_ipmi; "
                                              "address the BMC of the target machine directly"))
        if values.privlvl == "callback":
            problems.append(Problem("privlvl", "callback cannot control chassis power; use operator "
                                               "or administrator"))
        password = values.get("password") or ""
        if len(password.encode("utf-8", "surrogateescape")) > MAX_SECRET_BYTES:
            problems.append(Problem("password", f"is longer than {MAX_SECRET_BYTES} bytes, "
                                                "which IPMI does not allow"))
        if values.get("hexadecimal_kg") and not values.lanplus:
            problems.append(Problem("hexadecimal_kg", "needs lanplus (K_g exists only in IPMI 2.0)"))
        return problems

    @staticmethod
    def _host(values: Values) -> str:
        if values.port_as_ip and values.get("plug"):
            return str(values.plug).strip()
        return (values.get("ip") or "").strip()

    def bmc_target(self, values: Values) -> "ipmi.BmcTarget":
        return ipmi.BmcTarget(
            host=self._host(values), port=int(values.ipport), username=values.get("username") or "",
            password=values.get("password") or "", kg_key=kg_bytes(values.get("hexadecimal_kg")),
            cipher=int(values.cipher), privilege=values.privlvl, lanplus=bool(values.lanplus))

    # --- device primitives -------------------------------------------------------------
    @contextmanager
    def connect(self, ctx: FenceContext) -> Iterator[_Session]:
        target = self.bmc_target(ctx.values)
        login = float(ctx.values.login_timeout)
        left = ctx.deadline.remaining()
        if left < MIN_OP_SECONDS:
            raise DeadlineExceeded("no time left to log in to the BMC")
        # pyipmi logs through the root logger; without a handler of its own,
        # Python's last-resort handler would print its warnings on stderr.
        logging.getLogger("pyipmi").addHandler(logging.NullHandler())
        opened = time.monotonic()
        try:
            dev = ipmi.open_session(target, min(login, left))
        except ipmi.IpmiError as err:
            raise FenceError(str(err)) from None
        except ImportError as err:
            raise FenceError(f"python-ipmi >= 0.6.0 with rmcpplus is not installed for this "
                             f"interpreter ({err.name or err})") from None
        ctx.log.debug("session with BMC %s open in %.3fs (%s, cipher %s)", target,
                      time.monotonic() - opened, "lanplus" if target.lanplus else "IPMI 1.5",
                      target.cipher if target.lanplus else "-")
        session = _Session(dev, ctx, login)
        try:
            yield session
        finally:
            # close is bounded by the adapter and skipped when the BMC stopped answering
            dev.timeout = max(MIN_OP_SECONDS, min(login, ctx.deadline.remaining()))
            dev.close()

    def get_power(self, ctx: FenceContext, conn: _Session) -> str:
        if conn.cycle_off_seen:
            # the OFF phase of our power cycle was observed (see set_power); report it once
            conn.cycle_off_seen = False
            return fence.OFF
        return conn.power()

    def set_power(self, ctx: FenceContext, conn: _Session, state: str) -> None:
        if state == fence.OFF and ctx.action == "reboot" and ctx.values.method == "cycle":
            self._cycle(ctx, conn)
            return
        conn.call(lambda: conn.dev.set_power(state))

    def _cycle(self, ctx: FenceContext, conn: _Session) -> None:
        """method=cycle: one chassis power cycle. Success still requires the BMC
        to report power OFF at least once after the request; a cycle is short,
        so it is watched closely here and the observation latched for the
        library's confirmation poll."""
        conn.call(conn.dev.power_cycle)
        watch = ctx.deadline.sub(float(ctx.values.power_timeout))
        try:
            watch.poll(lambda: True if conn.power() == fence.OFF else None,
                       interval=CYCLE_WATCH_INTERVAL, max_interval=CYCLE_WATCH_INTERVAL,
                       what="power OFF during the power cycle")
        except DeadlineExceeded:
            raise FenceError(f"the BMC accepted the power cycle but never reported power OFF within "
                             f"{watch.total:.0f}s; use method=onoff") from None
        conn.cycle_off_seen = True

    def check(self, ctx: FenceContext, conn: _Session) -> None:
        conn.power()


AGENT = IpmiFence()


def main() -> None:
    fence.main(IpmiFence())  # answers to its installed name (fence.answer_to)


if __name__ == "__main__":
    main()
