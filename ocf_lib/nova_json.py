"""Nova's and Glance's JSON answers read into the records of nova.py, and the next-page link
of a listing. Split from nova_client.py, which imports these under their old private names.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

from .nova import Image, Migration, Server, Service


def next_link(doc: Dict[str, Any], key: str, image_base: str) -> str:
    if key == "images":
        nxt = doc.get("next") or ""
        if nxt and not nxt.startswith("http"):
            # glance answers "/v2/images?marker=..." relative to its root
            root = image_base[: -len("/v2")] if image_base.endswith("/v2") else image_base
            nxt = root + nxt
        return nxt
    for link in doc.get(f"{key}_links") or []:
        if link.get("rel") == "next":
            return str(link.get("href") or "")
    return ""


def parse_service(d: Mapping[str, Any]) -> Service:
    return Service(id=str(d.get("id")), host=str(d.get("host") or ""), binary=str(d.get("binary") or ""),
                   state=str(d.get("state") or ""), status=str(d.get("status") or ""),
                   forced_down=bool(d.get("forced_down")), disabled_reason=str(d.get("disabled_reason") or ""),
                   updated_at=str(d.get("updated_at") or ""))


def parse_server(d: Mapping[str, Any]) -> Server:
    image = d.get("image")
    flavor = d.get("flavor") or {}
    volumes = d.get("os-extended-volumes:volumes_attached") or []
    return Server(
        id=str(d.get("id")), name=str(d.get("name") or ""), status=str(d.get("status") or ""),
        task_state=d.get("OS-EXT-STS:task_state"), vm_state=str(d.get("OS-EXT-STS:vm_state") or ""),
        power_state=int(d.get("OS-EXT-STS:power_state") or 0), host=str(d.get("OS-EXT-SRV-ATTR:host") or ""),
        project_id=str(d.get("tenant_id") or d.get("project_id") or ""),
        image_id=str(image.get("id") or "") if isinstance(image, dict) else "",
        flavor_extra_specs={str(k): str(v) for k, v in (flavor.get("extra_specs") or {}).items()},
        flavor_name=str(flavor.get("original_name") or flavor.get("name") or ""),
        metadata={str(k): str(v) for k, v in (d.get("metadata") or {}).items()},
        tags=tuple(d.get("tags") or ()),
        volumes_attached=tuple(str(v.get("id")) for v in volumes if isinstance(v, dict)),
    )


def parse_migration(d: Mapping[str, Any]) -> Migration:
    return Migration(id=str(d.get("id")), instance_uuid=str(d.get("instance_uuid") or ""),
                     source_compute=str(d.get("source_compute") or ""), dest_compute=str(d.get("dest_compute") or ""),
                     status=str(d.get("status") or ""), migration_type=str(d.get("migration_type") or ""),
                     created_at=str(d.get("created_at") or ""), updated_at=str(d.get("updated_at") or ""))


_IMAGE_STD = {"id", "name", "tags", "status", "visibility", "protected", "checksum", "owner", "size", "min_ram",
              "min_disk", "disk_format", "container_format", "created_at", "updated_at", "self", "file", "schema",
              "virtual_size", "os_hash_algo", "os_hash_value", "os_hidden", "locations", "direct_url", "stores"}


def parse_image(d: Mapping[str, Any]) -> Image:
    props = {str(k): str(v) for k, v in d.items() if k not in _IMAGE_STD and isinstance(v, (str, int, float, bool))}
    return Image(id=str(d.get("id")), name=str(d.get("name") or ""), tags=tuple(d.get("tags") or ()),
                 properties=props)
