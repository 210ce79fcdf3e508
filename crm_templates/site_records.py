"""The site's records: the frozen dataclasses a site document is read into (model.load_site).

Split from model.py, which imports and re-exports them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union


@dataclass(frozen=True)
class Secret:
    """How a password reaches the agent. Exactly one form is set.

    `script`: a command printing the password (fence agents' password_script);
    `cib_secret`: the CIB holds `lrm://` and the value lives in Pacemaker's
    local secret store (`cibsecret set`); `inline`: the password itself.
    """

    inline: Optional[str] = None
    script: Optional[str] = None
    cib_secret: bool = False

    @property
    def is_inline(self) -> bool:
        return self.inline is not None


@dataclass(frozen=True)
class Bmc:
    address: str
    username: str
    password: Secret
    port: int = 623
    lanplus: bool = True
    cipher: Optional[int] = 3


@dataclass(frozen=True)
class Controller:
    name: str
    nodeid: int
    bmc: Optional[Bmc]


@dataclass(frozen=True)
class Compute:
    name: str  # the Pacemaker (remote) node name, also the remote resource id
    address: str  # where pacemaker_remoted listens
    nova_host: str  # the host name Nova uses for this compute service
    bmc: Bmc


@dataclass(frozen=True)
class Cloud:
    """Credentials for Keystone/Nova: a clouds.yaml entry or explicit fields."""

    cloud: Optional[str] = None
    clouds_yaml: Optional[str] = None
    auth_url: Optional[str] = None
    username: Optional[str] = None
    password: Optional[Secret] = None
    project_name: Optional[str] = None
    user_domain: Optional[str] = None
    project_domain: Optional[str] = None
    region_name: Optional[str] = None
    endpoint_type: Optional[str] = None
    insecure: bool = False


SiteNode = Union[Controller, Compute]


@dataclass(frozen=True)
class Evacuation:
    shared_storage: bool = False  # instance disks survive the host (else rebuilt from image)
    local_disk_policy: Optional[str] = None  # rebuild | skip (instances on local disks)
    selection: Optional[str] = None  # auto | marked | all
    marker: Optional[str] = None  # tag / metadata key / extra spec marking evacuable instances
    exclude_projects: Tuple[str, ...] = ()
    exclude_images: Tuple[str, ...] = ()  # image ids or tag:<tag>
    max_parallel: Optional[int] = None  # global cap on in-flight evacuations
    max_parallel_per_host: Optional[int] = None
    stagger: Optional[int] = None  # seconds between two evacuate calls
    delay: Optional[int] = None  # seconds to wait after fencing before evacuating


@dataclass(frozen=True)
class Reserved:
    aggregate: str  # the Nova host aggregate whose hosts receive evacuated instances
    hosts: Tuple[str, ...] = ()  # the computes meant to be in it (checked, documented)


@dataclass(frozen=True)
class Kdump:
    timeout: int = 60
    nodename_check: bool = True


@dataclass(frozen=True)
class Agents:
    provider: str = "computeha"
    fence_ipmi: str = "fence_ipmi"
    fence_compute: str = "fence_compute"


@dataclass(frozen=True)
class Site:
    name: str
    controllers: Tuple[Controller, ...]
    computes: Tuple[Compute, ...]
    cloud: Cloud
    evacuation: Evacuation = Evacuation()
    kdump: Optional[Kdump] = None
    reserved: Optional[Reserved] = None
    control_plane_services: Tuple[str, ...] = ()
    role_attribute: str = "computeha-role"
    recheck_interval: str = "1min"
    remote_port: int = 3121
    reconnect_interval: str = "60s"
    # how a compute that stops answering is noticed: a partitioned or hung node is declared failed
    # within interval + timeout of its last answer (a powered-off one at once: its connection drops)
    remote_monitor_interval: str = "20s"
    remote_monitor_timeout: str = "40s"
    agents: Agents = Agents()
