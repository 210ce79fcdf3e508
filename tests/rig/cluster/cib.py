"""The rig's Pacemaker configuration as XML, and the rig as a ``crm_templates`` site.

Built with ElementTree and pushed with one ``cibadmin`` (rather than ~15 ``pcs -f`` calls
at 0.5-3 s each on a busy 2-core box).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, Dict, Optional, Sequence, Tuple

from tests.rig.cluster.config import BMC_USER, IPMI_PORT, SEED_OPTIONS, Layout, Node
from tests.rig.cluster.util import RigError

BOOTSTRAP = "cib-bootstrap-options"


def set_nvpairs(parent: ET.Element, set_id: str, values: Dict[str, str]) -> None:
    for name, value in values.items():
        nv = parent.find(f"nvpair[@name='{name}']")
        if nv is None:
            nv = ET.SubElement(parent, "nvpair", id=f"{set_id}-{name}", name=name)
        nv.set("value", value)


def primitive(parent: ET.Element, rid: str, cls: str, rtype: str, provider: Optional[str],
              params: Dict[str, str], ops: Sequence[Tuple[str, str, Optional[str]]]) -> None:
    attrs = {"id": rid, "class": cls, "type": rtype}
    if provider:
        attrs["provider"] = provider
    prim = ET.SubElement(parent, "primitive", attrs)
    if params:
        set_nvpairs(ET.SubElement(prim, "instance_attributes", id=f"{rid}-instance_attributes"),
                    f"{rid}-instance_attributes", params)
    operations = ET.SubElement(prim, "operations")
    for name, interval, timeout in ops:
        op = ET.SubElement(operations, "op", id=f"{rid}-{name}-interval-{interval}", name=name,
                           interval=interval)
        if timeout:
            op.set("timeout", timeout)


def _bootstrap(conf: ET.Element) -> ET.Element:
    props = conf.find(f"crm_config/cluster_property_set[@id='{BOOTSTRAP}']")
    if props is None:
        crm_config = conf.find("crm_config")
        if crm_config is None:
            crm_config = ET.SubElement(conf, "crm_config")
        props = ET.SubElement(crm_config, "cluster_property_set", id=BOOTSTRAP)
    return props


def rig_configuration(layout: Layout, live: ET.Element, fence_agent: str,
                      fence_action: str) -> ET.Element:
    """The live ``<configuration>`` plus the rig's fencing setup.

    One ``ocf:pacemaker:remote`` per compute, one IPMI fence device per node (lanplus,
    cipher 3, password by ``password_script``: never in the CIB), a Dummy clone on the
    remote nodes, stonith enabled.
    """
    found = live.find("configuration")
    if found is None:
        raise RigError("live CIB has no <configuration>")
    conf = ET.fromstring(ET.tostring(found))
    set_nvpairs(_bootstrap(conf), BOOTSTRAP, {"stonith-enabled": "true",
                                             "stonith-action": fence_action})
    resources, constraints = conf.find("resources"), conf.find("constraints")
    if resources is None or constraints is None:
        raise RigError("live CIB has no <resources>/<constraints>")
    for n in layout.computes:
        primitive(resources, n.name, "ocf", "remote", "pacemaker",
                  {"server": n.ip, "reconnect_interval": "5s"}, [("monitor", "5s", "15s")])
    for n in layout.nodes:
        dev = f"fence-{n.name}"
        primitive(resources, dev, "stonith", fence_agent, None,
                  {"ip": n.bmc_ip, "ipport": str(IPMI_PORT), "username": BMC_USER,
                   "password_script": str(layout.bmc_password_script), "lanplus": "1",
                   "cipher": "3", "pcmk_host_list": n.name},
                  [("monitor", "60s", None)])
        if n.is_controller:  # a node never runs its own fence device
            ET.SubElement(constraints, "rsc_location", id=f"location-{dev}-avoids",
                          rsc=dev, node=n.name, score="-INFINITY")
    if layout.computes:
        clone = ET.SubElement(resources, "clone", id="compute-dummy-clone")
        primitive(clone, "compute-dummy", "ocf", "Dummy", "pacemaker", {},
                  [("monitor", "10s", None)])
        loc = ET.SubElement(constraints, "rsc_location", id="location-compute-dummy-clone",
                            rsc="compute-dummy-clone")
        rule = ET.SubElement(loc, "rule", id="location-compute-dummy-clone-rule",
                             score="-INFINITY")
        ET.SubElement(rule, "expression", id="location-compute-dummy-clone-rule-expr",
                      attribute="#kind", operation="ne", value="remote")
    return conf


def site_model(layout: Layout, cloud: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
    """The rig as a ``crm_templates`` site document (BMCs, remotes, password_script)."""
    def bmc(n: Node) -> Dict[str, Any]:
        return {"address": n.bmc_ip, "port": IPMI_PORT, "username": BMC_USER,
                "password_script": str(layout.bmc_password_script), "lanplus": True,
                "cipher": 3}

    site: Dict[str, Any] = {
        "name": "rig",
        "controllers": [{"name": n.name, "nodeid": n.nodeid, "bmc": bmc(n)}
                        for n in layout.controllers],
        "computes": [{"name": n.name, "address": n.ip, "bmc": bmc(n)} for n in layout.computes],
        "cloud": cloud,
        "reconnect_interval": "5s",
        # the rig's own remote monitor (5s/15s): a partition is noticed within 20 s, not 60
        "remote_monitor_interval": "5s",
        "remote_monitor_timeout": "15s",
    }
    site.update(extra)
    return site


def site_configuration(site: Dict[str, Any]) -> Tuple[str, ET.Element]:
    """The project's own CIB rendering of ``site``: (full text, its ``<configuration>``),
    with the rig's short dc-deadtime kept for the next cold start."""
    from computeha.crm_templates.model import load_site
    from computeha.crm_templates.render import render

    xml_text = render(load_site(site), "cib")
    conf = ET.fromstring(xml_text).find("configuration")
    if conf is None:
        raise RigError("crm_templates rendered no <configuration>")
    props = _bootstrap(conf)
    if props.find("nvpair[@name='dc-deadtime']") is None:
        set_nvpairs(props, BOOTSTRAP, {"dc-deadtime": SEED_OPTIONS["dc-deadtime"]})
    return xml_text, conf
