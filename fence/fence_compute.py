"""fence_compute: tell Nova that a fenced compute host is down, record it for evacuation.

The second device of a compute node's fencing level (after the power
device). Fabric fencing: no reboot, default action off, automatic unfencing.

off      force the nova-compute service down, disable it with a reason that
         says who fenced it and when (computeha: ...), then write the cluster
         record `computeha-evacuate=requested;<time>;<evidence>` on the
         node and read it back. A host an administrator had disabled keeps
         its reason and is still recorded. Already OFF = forced down,
         disabled and an evacuation request pending (requested/running).
on       (unfencing, before Pacemaker starts resources on the rejoining node)
         succeeds at once and touches nothing: forced_down stays set. It
         must not wait for the evacuation: Pacemaker's controller waits for
         every in-flight action before it reacts to a new failure, and under
         load runs one action at a time, so a waiting unfence held back the
         fence of a lost controller running NovaEvacuate, which the
         evacuation itself needed (a deadlock, seen on the test rig).
         NovaCompute, which Pacemaker starts right after, keeps nova-compute
         from running until the record is finished (done/failed, or absent)
         and Nova lists no in-progress evacuation from the host; then it
         starts nova-compute while still forced down, waits for the host's
         migrations to become `completed`, clears forced_down, enables the
         service (if we disabled it) and clears the record. Nova 2023.1+
         refuses force-up while `done` records remain, and older Nova accepts
         the same order, so one order works everywhere.
status   OFF (exit 2) = forced down AND disabled AND an evacuation recorded;
         otherwise ON (0); Nova unreachable or host unknown: exit 1.
monitor  authenticate to Keystone and list compute services (admin).
list     the compute hosts Nova knows, as "<pacemaker name>,<nova host>".
"""
from __future__ import annotations

import dataclasses
import os
import socket
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, TypeVar

from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib import fence
from computeha.ocf_lib import log as ocflog
from computeha.ocf_lib.attrs import CibAttributes, ClusterAttributeError, NodeAttributes, set_and_confirm
from computeha.ocf_lib.deadline import DeadlineExceeded
from computeha.ocf_lib.fence import OFF, ON, FenceAgent, FenceContext, FenceError
from computeha.ocf_lib.hostnames import HOSTNAME_PARAMS, HostMapper, HostMappingError
from computeha.ocf_lib.nova import Nova, NovaError, NovaUnavailable, Service
from computeha.ocf_lib.nova_auth import AUTH_PARAMS, AuthConfig, AuthConfigError, secrets_of
from computeha.ocf_lib.params import Kind, Param, ParamTable, Problem, Values
from computeha.ocf_lib.timefmt import format_utc

T = TypeVar("T")

_RECORD_ONLY_OFF = ("2", "disabled")
_RECORD_ONLY_ON = ("0", "1", "yes", "no", "true", "false", "on", "off", "y", "n")
_TARGETED = ("on", "off", "enable", "disable", "status", "reboot")


def _check_record_only(value: str) -> Optional[str]:
    if value.strip().lower() not in _RECORD_ONLY_OFF + _RECORD_ONLY_ON:
        return "must be 0/1 (no effect: fence_compute only ever records) or 2/disabled (do nothing, exit 0)"
    return None


AGENT_PARAMS = ParamTable([
    Param("record_only", Kind.STRING, "Legacy: 1 = only record (always the case); 2 or disabled = do nothing",
          "Legacy meaning kept: fence_compute only marks the host and records the evacuation request (the "
          "evacuation is NovaEvacuate's job), so 0/1 change nothing; 2 or 'disabled' makes every action "
          "succeed at once without touching Nova or the cluster.", default="1", metavar="value",
          check=_check_record_only),
    Param("no_shared_storage", Kind.BOOLEAN, "Accepted for compatibility; evacuation options belong to NovaEvacuate",
          default=False),
    Param("instance_filtering", Kind.BOOLEAN, "Accepted for compatibility; unused by fence_compute", default=True),
    Param("check_level", Kind.INTEGER, "validate-all depth: 0 parameters only, 10 also Keystone and Nova",
          "validate-all checks the parameters at 0; at 10 or more it also authenticates and lists the compute "
          "services (read-only, no change anywhere).", default=0, minimum=0, metavar="level"),
])

POWER_TIMEOUT_DEFAULT = 50  # off is verified by read-back within this; fits Pacemaker's default 60 s stonith-timeout


@dataclasses.dataclass
class Target:
    node: str  # Pacemaker node name: the record lives there
    host: str  # Nova compute host


class Conn:
    """What one run talks to: Nova, the cluster record store, the name mapping."""

    def __init__(self, agent: "FenceCompute", ctx: FenceContext, nova: Optional[Nova],
                 attrs: Optional[NodeAttributes]) -> None:
        self.agent = agent
        self.ctx = ctx
        self.nova = nova
        self.attrs = attrs
        self._mapper: Optional[HostMapper] = None
        self._target: Optional[Target] = None
        self.services: Dict[str, Service] = {}
        self.written: Optional[Service] = None
        self.disabled = str(ctx.values.record_only).strip().lower() in _RECORD_ONLY_OFF

    def retry(self, what: str, fn: Callable[[], T]) -> T:
        """Retry transient Nova failures (timeouts, 5xx, refused connections) until the deadline."""
        delay = 0.2
        while True:
            try:
                return fn()
            except NovaUnavailable as err:
                if self.ctx.deadline.remaining() <= delay:
                    raise FenceError(f"{what}: Nova unavailable until the deadline: {err}") from None
                self.ctx.log.warning("%s: %s; retrying", what, err)
                self.ctx.deadline.sleep(delay)
                delay = min(2.0, delay * 2)
            except NovaError as err:
                raise FenceError(f"{what}: {err}") from None
            except ClusterAttributeError as err:
                raise FenceError(f"{what}: cluster record: {err}") from None

    def mapper(self) -> HostMapper:
        if self._mapper is None:
            assert self.nova is not None
            services = self.retry("listing compute services", self.nova.compute_services)
            self.services = {s.host: s for s in services}
            self._mapper = HostMapper.from_values(self.services.keys(), self.ctx.values)
        return self._mapper

    def target(self) -> Target:
        if self._target is None:
            plug = self.ctx.plug.strip()
            if plug and plug not in HostMapper.from_values((), self.ctx.values).host_map:
                # the usual case costs one request: the plug is a Nova host name (exact match wins)
                nova = self.nova
                assert nova is not None
                found = self.retry(f"reading the compute service of {plug}", lambda: nova.compute_services(plug))
                if len(found) == 1:
                    self.services[plug] = found[0]
                    self._target = Target(node=self.ctx.nodename or plug, host=plug)
                    return self._target
            try:
                host = self.mapper().to_nova(self.ctx.plug)
            except HostMappingError as err:
                raise FenceError(str(err)) from None
            self._target = Target(node=self.ctx.nodename or self.ctx.plug, host=host)
        return self._target

    def service(self, fresh: bool = True) -> Service:
        fresh_lookup = self._target is None
        target = self.target()
        if self.written is not None:
            svc, self.written = self.written, None
            return svc
        if fresh_lookup and target.host in self.services:
            return self.services[target.host]  # read just now by the lookup
        if fresh or target.host not in self.services:
            nova = self.nova
            assert nova is not None
            found = self.retry(f"reading the compute service of {target.host}",
                               lambda: nova.compute_services(target.host))
            if len(found) != 1:  # never take [0] of an unexpected answer
                raise FenceError(f"Nova lists {len(found)} nova-compute services for {target.host}")
            self.services[target.host] = found[0]
        return self.services[target.host]

    def record(self) -> Optional[rec.EvacuationRecord]:
        attrs = self.attrs
        assert attrs is not None
        node = self.target().node
        return rec.parse(self.retry(f"reading {rec.ATTRIBUTE} of {node}", lambda: attrs.get(node, rec.ATTRIBUTE)))


class FenceCompute(FenceAgent):
    name = "fence_compute"
    shortdesc = "Fence agent for OpenStack Nova compute hosts (marks the host down, records the evacuation)"
    longdesc = (
        "fence_compute is the second device of a compute node's fencing level, after the power device. "
        "off forces the host's nova-compute service down, disables it with a reason naming who fenced it and "
        "when, and records the evacuation request in the persistent node attribute computeha-evacuate "
        "(read back before success). on (automatic unfencing) succeeds at once and changes nothing: the "
        "NovaCompute resource keeps nova-compute from running until the evacuation is finished, then clears "
        "forced_down after nova-compute restarted (a waiting unfence would hold back Pacemaker's reaction to "
        "other failures). Keystone v3 only.")
    vendor_url = "https://docs.openstack.org/nova/latest/"
    fabric = True
    has_plug = True
    has_list = True
    table = AUTH_PARAMS + HOSTNAME_PARAMS + AGENT_PARAMS

    def __init__(self, nova_factory: Optional[Callable[[FenceContext, AuthConfig], Nova]] = None,
                 attributes_factory: Optional[Callable[[FenceContext], NodeAttributes]] = None,
                 clock: Callable[[], float] = time.time, who: Optional[str] = None) -> None:
        self.nova_factory = nova_factory or _real_nova
        self.attributes_factory = attributes_factory or _cib_attributes
        self.clock = clock
        self.who = who or socket.gethostname().split(".")[0] or "unknown"

    def full_table(self) -> ParamTable:
        table = super().full_table()
        return ParamTable([dataclasses.replace(p, default=POWER_TIMEOUT_DEFAULT) if p.name == "power_timeout" else p
                           for p in table])

    # --- input ------------------------------------------------------------------------
    def validate(self, values: Values, plug: str) -> List[Problem]:
        problems: List[Problem] = []
        action = str(values.get("action") or "").strip().lower()
        if str(values.get("record_only") or "").strip().lower() in _RECORD_ONLY_OFF:
            return problems
        try:
            config = AuthConfig.from_values(values)
        except AuthConfigError as err:
            return [Problem("", str(err))]
        ocflog.add_secrets(secrets_of(config))
        problems += config.problems()
        if action in _TARGETED and not plug:
            problems.append(Problem("plug", f"is required for action {action} (the compute node to act on)"))
        if not problems and action in ("validate-all", "validate_all") and int(values.get("check_level") or 0) >= 10:
            problems += self._deep_check(values, config, plug)
        return problems

    def _deep_check(self, values: Values, config: AuthConfig, plug: str) -> List[Problem]:
        from computeha.ocf_lib.deadline import Deadline

        ctx = FenceContext(agent=self.name, action="validate-all", values=values, plug=plug, nodename="",
                           env=dict(os.environ), deadline=Deadline(float(values.login_timeout) + 10.0),
                           log=ocflog.get_logger(), runner=None)  # type: ignore[arg-type]
        try:
            nova = self.nova_factory(ctx, config)
            nova.check()
            if plug:
                hosts = [s.host for s in nova.compute_services()]
                HostMapper.from_values(hosts, values).to_nova(plug)
        except (NovaError, HostMappingError) as err:
            return [Problem("", str(err))]
        return []

    # --- device primitives ----------------------------------------------------------
    @contextmanager
    def connect(self, ctx: FenceContext) -> Iterator[Conn]:
        if str(ctx.values.record_only).strip().lower() in _RECORD_ONLY_OFF:
            ctx.log.warning("record_only=%s: fence_compute is disabled and does nothing", ctx.values.record_only)
            yield Conn(self, ctx, None, None)
            return
        config = AuthConfig.from_values(ctx.values)
        ocflog.add_secrets(secrets_of(config))
        nova = self.nova_factory(ctx, config)
        attrs = self.attributes_factory(ctx) if ctx.action in ("on", "off", "status") else None
        yield Conn(self, ctx, nova, attrs)

    def check(self, ctx: FenceContext, conn: Conn) -> None:
        if conn.disabled:
            return
        assert conn.nova is not None  # None only when disabled (record_only off)
        conn.retry("checking Keystone and Nova", conn.nova.check)

    def list_targets(self, ctx: FenceContext, conn: Conn) -> Dict[str, str]:
        if conn.disabled:
            return {}
        mapper = conn.mapper()
        result: Dict[str, str] = {}
        for node, host in mapper.pairs():
            svc = conn.services[host]
            alias = host
            if ctx.action == "list-status":
                alias += ",OFF" if svc.forced_down and svc.status == "disabled" else ",ON"
            result[node] = alias
        return result

    def get_power(self, ctx: FenceContext, conn: Conn) -> str:
        if conn.disabled or ctx.action == "on":  # unfencing never waits: see the module docstring
            return OFF if ctx.action == "off" else ON
        svc = conn.service()
        record = conn.record()
        fenced = svc.forced_down and svc.status == "disabled"
        if ctx.action == "status":
            return OFF if fenced and record is not None else ON
        # off: done only when a request is pending (a finished or missing record is written again)
        pending = record is not None and record.state in (rec.REQUESTED, rec.RUNNING)
        return OFF if fenced and pending else ON

    def set_power(self, ctx: FenceContext, conn: Conn, state: str) -> None:
        if conn.disabled:
            return
        if state == ON:
            # read-only by design: NovaCompute clears forced_down once nova-compute restarted
            ctx.log.info("%s may return: leaving forced_down to NovaCompute start", conn.target().host)
            return
        self._fence(ctx, conn)

    def _fence(self, ctx: FenceContext, conn: Conn) -> None:
        target = conn.target()
        nova, attrs = conn.nova, conn.attrs
        assert nova is not None and attrs is not None
        now = self.clock()
        svc = conn.service(fresh=False)
        reason = rec.disabled_reason(f"fenced {format_utc(now)} by {self.who}; evacuation requested")
        ours_to_disable = svc.status == "enabled" or rec.is_ours(svc.disabled_reason)
        both = getattr(nova, "force_down_and_disable", None)
        if ours_to_disable and both is not None:
            # forced_down and disabled in one request (2.53+): Nova never sees a disabled-but-up service
            first = svc
            svc = conn.retry(f"fencing {target.host} in Nova", lambda: both(first, reason))
        else:
            if not svc.forced_down:
                first = svc
                svc = conn.retry(f"forcing {target.host} down", lambda: nova.force_down(first, True))
            if ours_to_disable:
                current = svc
                svc = conn.retry(f"disabling {target.host}", lambda: nova.set_enabled(current, False, reason))
            else:
                ctx.log.info("%s was already disabled by an administrator (%s): keeping that reason, recording "
                             "the evacuation anyway", target.host, svc.disabled_reason or "no reason given")
        conn.services[target.host] = svc
        conn.written = svc  # Nova's answer to our update is the first verification read
        record = conn.record()
        if record is not None and record.state in (rec.REQUESTED, rec.RUNNING):
            ctx.log.info("evacuation of %s already %s", target.node, record.state)
            return
        value = rec.new(rec.REQUESTED, f"fenced by {self.who}: nova {target.host} forced down", now).format()
        sub = ctx.deadline.sub(max(1.0, ctx.deadline.remaining() - 0.5))
        try:
            conn.retry(f"recording the evacuation of {target.node}",
                       lambda: set_and_confirm(attrs, target.node, rec.ATTRIBUTE, value, sub))
        except DeadlineExceeded as err:
            raise FenceError(f"recording the evacuation of {target.node}: {err}") from None
        ctx.log.info("fenced %s (nova host %s): forced down, disabled, evacuation requested", target.node,
                     target.host)


def _real_nova(ctx: FenceContext, config: AuthConfig) -> Nova:
    from computeha.ocf_lib.nova_client import NovaClient  # lazy: keystoneauth1 only when needed

    return NovaClient.from_config(config, deadline=ctx.deadline)


def _cib_attributes(ctx: FenceContext) -> NodeAttributes:
    return CibAttributes(ctx.runner, timeout=max(1.0, min(10.0, ctx.deadline.remaining())))


def main() -> None:
    fence.main(FenceCompute())


if __name__ == "__main__":
    main()
