"""`computeha`: render and validate site models; show Instance HA status, plans and history.

Exit codes (stable, for scripts):
  0  success
  1  the input or the cluster state is not OK (invalid site model; `status`: a host failed)
  2  usage error (unknown option, missing argument)
  3  not available (cluster, Nova or a component cannot be reached or is not installed)
"""
from __future__ import annotations

import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import List, Optional

import click

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


def _fail(code: int, lines: List[str], prefix: str = "error") -> None:
    for line in lines:
        click.echo(f"{prefix}: {line}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Instance HA for OpenStack compute under Pacemaker.

    \b
    Configure:  computeha validate SITE.yaml
                computeha render --format pcs|crmsh|cib SITE.yaml
    Operate:    computeha status | plan HOST | events | pause | resume

    Exit codes: 0 ok, 1 invalid input or a failed host, 2 usage, 3 not available.
    """


def _load(site_file: str):
    from .model import SiteError
    from .render import read_site

    try:
        return read_site(site_file)
    except SiteError as err:
        _fail(EXIT_INVALID, err.problems, prefix=f"invalid {site_file}")


@main.command()
@click.argument("site_file", metavar="SITE.yaml", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def validate(site_file: str, as_json: bool) -> None:
    """Check a site model; every problem is reported with the field it is in.

    Inline passwords are accepted with a warning: prefer password_script,
    password_cib_secret or a clouds.yaml cloud name.
    """
    from .model import SiteError, inline_secrets
    from .render import read_site

    try:
        site = read_site(site_file)
    except SiteError as err:
        if as_json:
            click.echo(json.dumps({"valid": False, "problems": err.problems}))
            sys.exit(EXIT_INVALID)
        _fail(EXIT_INVALID, err.problems, prefix=f"invalid {site_file}")
        return
    warnings = [f"{path}: inline password; prefer password_script, password_cib_secret or a cloud name"
                for path in inline_secrets(site)]
    if as_json:
        click.echo(json.dumps({"valid": True, "warnings": warnings, "controllers": len(site.controllers),
                               "computes": len(site.computes)}))
        return
    for line in warnings:
        click.echo(f"warning: {line}", err=True)
    click.echo(f"{site_file}: valid ({len(site.controllers)} controllers, {len(site.computes)} computes)")


@main.command()
@click.option("--format", "fmt", type=click.Choice(["pcs", "crmsh", "cib"]), required=True,
              help="pcs: a shell script of pcs commands; crmsh: a file for `crm configure load update`; "
                   "cib: CIB XML.")
@click.option("--base", type=click.Path(exists=True, dir_okay=False),
              help="cib only: an existing CIB (cibadmin --query) to render into; the result can be checked "
                   "with crm_verify --xml-file and loaded with cibadmin --replace.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout "
              "(mode 0600 when the site has inline passwords).")
@click.argument("site_file", metavar="SITE.yaml", type=click.Path(dir_okay=False))
def render(fmt: str, base: Optional[str], output: Optional[str], site_file: str) -> None:
    """Render a site model as pcs commands, a crmsh configuration or CIB XML.

    All three come from the same objects; re-applying any of them is safe.
    """
    from .objects import build
    from .render import render as do_render

    site = _load(site_file)
    if base and fmt != "cib":
        raise click.UsageError("--base applies to --format cib only")
    base_text = Path(base).read_text(encoding="utf-8") if base else ""
    try:
        text = do_render(site, fmt, script=Path(output).name if output else "", base=base_text)
    except (ValueError, ET.ParseError) as err:  # a base CIB that is not a CIB, a here-document clash
        _fail(EXIT_INVALID, [" ".join(str(err).split())])
        return
    if not output:
        click.echo(text, nl=False)
        return
    secret = build(site).inline_secrets
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    if secret:
        os.chmod(output, 0o600)


# --- operating ---------------------------------------------------------------------------


def _runner():
    from computeha.ocf_lib.runner import Runner

    return Runner()


def _hosts(role_attribute: str):
    from . import clusterview

    try:
        return clusterview.hosts_from_cib(clusterview.read_cib(_runner()), role_attribute)
    except clusterview.ClusterUnavailable as err:
        _fail(EXIT_UNAVAILABLE, [str(err)])


def _bar(done: Optional[int], total: Optional[int], width: int = 20) -> str:
    if done is None or not total:
        return ""
    filled = int(width * min(done, total) / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def _status_lines(hosts) -> List[str]:
    from .clusterview import iso

    if not hosts:
        return ["no evacuation records: no compute host has been fenced (or all records were cleared)"]
    rows = [("HOST", "STATE", "SINCE", "PROGRESS", "DETAIL")]
    for h in hosts:
        rows.append((h.node, h.state, iso(h.since), _bar(h.done, h.total) or h.note or "-", h.detail or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]


def _switch(paused: bool, resource: Optional[str]) -> None:
    from . import clusterview, maintenance

    runner = _runner()
    try:
        found = maintenance.switches(clusterview.read_cib(runner))
        targets = [s for s in found if resource is None or s.resource == resource]
        if not targets:
            _fail(EXIT_INVALID, [f"no NovaEvacuate resource {resource!r} in the cluster" if resource
                                 else "no NovaEvacuate resource in the cluster"])
        for switch in targets:
            if switch.paused == paused:
                click.echo(f"{switch.resource}: already {'paused' if paused else 'running'}")
                continue
            maintenance.set_paused(runner, switch.resource, paused)
            what = ("paused: fencing goes on, requests are recorded, nothing is evacuated" if paused
                    else "resumed: the recorded requests are processed in order")
            click.echo(f"{switch.resource}: {what}")
    except clusterview.ClusterUnavailable as err:
        _fail(EXIT_UNAVAILABLE, [str(err)])


@main.command()
@click.option("--resource", help="The NovaEvacuate resource id (default: every NovaEvacuate resource).")
def pause(resource: Optional[str]) -> None:
    """Maintenance: stop automatic evacuation; fencing goes on and requests stay recorded.

    Sets NovaEvacuate's `paused` parameter (Pacemaker restarts the agent).
    """
    _switch(True, resource)


@main.command()
@click.option("--resource", help="The NovaEvacuate resource id (default: every NovaEvacuate resource).")
def resume(resource: Optional[str]) -> None:
    """End maintenance: the requests recorded meanwhile are processed in the order they were made."""
    _switch(False, resource)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON (one object per host).")
@click.option("--watch", is_flag=True, help="Redraw until every host is done or failed (default when stdout "
              "is a terminal and a host is in progress; --no-watch to disable).")
@click.option("--no-watch", is_flag=True, hidden=False, help="Print once, even on a terminal.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between redraws.")
@click.option("--timeout", default=600.0, show_default=True, help="Stop watching after this many seconds.")
@click.option("--role-attribute", default="computeha-role", show_default=True,
              help="Node attribute marking roles (as in the site model).")
@click.option("--instances", is_flag=True, help="Also list each instance's evacuation (asks Nova; needs --site "
              "or a clouds.yaml cloud).")
@click.option("--site", "site_file", type=click.Path(dir_okay=False), help="The site model (credentials and "
              "Nova host names, for --instances).")
def status(as_json: bool, watch: bool, no_watch: bool, interval: float, timeout: float, role_attribute: str,
           instances: bool, site_file: Optional[str]) -> None:
    """Which compute hosts are fenced, evacuating, done or failed, with progress.

    Reads the cluster record (node attribute computeha-evacuate and the
    transient computeha-progress) with cibadmin; set CIB_file to read a CIB
    file instead of the running cluster. Exit 1 when a host's evacuation failed.
    """
    from computeha.ocf_lib.evacuation_record import FAILED, FINISHED

    hosts = _hosts(role_attribute)
    site = _load(site_file) if site_file else None
    nova = _nova(site) if instances else None
    if as_json:
        per_instance = _instances(nova, hosts, site) if nova is not None else {}
        click.echo(json.dumps([dict(h.as_dict(), **({"instances": per_instance.get(h.node, [])} if nova else {}))
                               for h in hosts]))
        sys.exit(EXIT_INVALID if any(h.state == FAILED for h in hosts) else EXIT_OK)
    live = (watch or (sys.stdout.isatty() and not no_watch)) and not no_watch
    deadline = time.monotonic() + timeout
    while True:
        if live and sys.stdout.isatty():
            click.clear()
        for line in _status_lines(hosts):
            click.echo(line)
        if nova is not None:
            for node, items in _instances(nova, hosts, site).items():
                for item in items:
                    click.echo(f"  {node}: {item['instance']}  {item['status']:<10} -> {item['dest'] or '-'}")
        pending = [h for h in hosts if h.state not in FINISHED]
        if not live or not pending or time.monotonic() + interval > deadline:
            break
        time.sleep(interval)  # a redraw period, not a wait for state: the state is re-read each time
        hosts = _hosts(role_attribute)
    sys.exit(EXIT_INVALID if any(h.state == FAILED for h in hosts) else EXIT_OK)


def _nova(site):
    from . import planning

    try:
        return planning.nova_for(site)
    except planning.PlanUnavailable as err:
        _fail(EXIT_UNAVAILABLE, [str(err)], prefix="not available")


def _instances(nova, hosts, site):
    from . import planning

    try:
        return planning.instance_progress(nova, hosts, site)
    except planning.PlanUnavailable as err:
        _fail(EXIT_UNAVAILABLE, [str(err)], prefix="not available")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the events as JSON.")
@click.option("--role-attribute", default="computeha-role", show_default=True, hidden=True)
def events(as_json: bool, role_attribute: str) -> None:
    """The recorded history of fences (Pacemaker's fence history) and evacuations
    (the cluster record), oldest first."""
    from . import clusterview

    runner = _runner()
    found = clusterview.record_events(_hosts(role_attribute) or [])
    notes = []
    try:
        found += clusterview.fence_events(clusterview.read_fence_history(runner))
    except clusterview.ClusterUnavailable as err:
        notes.append(f"fence history not available: {err}")
    found.sort(key=lambda e: (e.when, e.kind, e.target))
    if as_json:
        click.echo(json.dumps({"events": [e.as_dict() for e in found], "notes": notes}))
        return
    for note in notes:
        click.echo(f"warning: {note}", err=True)
    for e in found:
        click.echo(f"{clusterview.iso(e.when)}  {e.kind:<10}  {e.target:<20}  {e.what:<9}  {e.result:<8}  {e.detail}")


@main.command()
@click.argument("host")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--site", "site_file", type=click.Path(dir_okay=False), help="The site model (for the "
              "NovaEvacuate parameters and the Nova host name of HOST).")
def plan(host: str, as_json: bool, site_file: Optional[str]) -> None:
    """Dry run: which instances would be evacuated if HOST failed now, which are
    excluded and why, and whether the remaining capacity can hold them."""
    from . import planning

    site = _load(site_file) if site_file else None
    try:
        result = planning.plan(host, site)
    except planning.PlanUnavailable as err:
        _fail(EXIT_UNAVAILABLE, [str(err)], prefix="not available")
        return
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    for line in result.lines():
        click.echo(line)


if __name__ == "__main__":  # pragma: no cover
    main()
