"""One entry point for every rendering: site file -> model -> objects -> text."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Union

import yaml

from . import render_cib, render_crmsh, render_pcs
from .model import Site, SiteError, load_site
from .objects import Config, build

FORMATS = ("pcs", "crmsh", "cib")
SUFFIX = {"pcs": "pcs", "crmsh": "crm", "cib": "xml"}


def read_site(path: Union[str, Path]) -> Site:
    """Parse and validate a site file; SiteError for YAML and model problems alike."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SiteError([f"{path}: cannot read: {err.strerror}"]) from None
    return parse_site(text, str(path))


def parse_site(text: str, origin: str = "site") -> Site:
    try:
        data: Any = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # C parser: 500 computes
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SiteError([f"{origin}:{where} not valid YAML: {problem}"]) from None
    return load_site(data)


def render(site: Site, fmt: str, script: str = "", base: str = "") -> str:
    """`base`: the text of an existing CIB to render into (cib format only)."""
    config = build(site)
    if base:
        if fmt != "cib":
            raise ValueError("a base CIB applies to the cib format only")
        return render_cib.render_into(base, config)
    name = script or f"{site.name}.{SUFFIX[fmt]}"
    renderers: Dict[str, Callable[[], str]] = {
        "pcs": lambda: render_pcs.render(config, site.name, name),
        "crmsh": lambda: render_crmsh.render(config, site.name, name),
        "cib": lambda: render_cib.render(config),
    }
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r} (use one of {', '.join(FORMATS)})")
    return renderers[fmt]()


def config_of(site: Site) -> Config:
    return build(site)
