"""Flavor markers are cloud-wide: a flavor marked `evacuable` on another host's instances means the cloud
marks, so the failed host's unmarked instances stay; a listing refused by policy falls back to the failed
host's own flavors, any other failure makes the plan wait instead of guessing."""
from __future__ import annotations

import logging

from computeha.ocf_lib import evacuation_record as rec
from computeha.ocf_lib.nova import NovaForbidden
from tests.unit.evacuation_fakes import MiniNova
from tests.unit.test_evacuation_engine import finishes, flag, make, record


def failed_host_with_an_unmarked_server(nova: MiniNova) -> str:
    nova.add_server("compute-1", flavor_name="gold", flavor_extra_specs={"evacuable": "true"})
    sid = nova.add_server("compute-0", flavor_name="m1.small").id
    nova.fence("compute-0")
    return sid


def run(tmp_path, nova):
    engine, attrs, _ = make(tmp_path, nova)
    flag(attrs, "compute-0")
    assert finishes(engine, 10)
    return attrs


def test_a_flavor_marked_only_on_other_hosts_still_marks_the_cloud(tmp_path):
    nova = MiniNova()
    nova.flavor_specs = {"gold": {"evacuable": "true"}, "m1.small": {}}
    unmarked = failed_host_with_an_unmarked_server(nova)
    attrs = run(tmp_path, nova)
    assert unmarked not in nova.evacuations and nova.servers[unmarked].host == "compute-0"
    assert record(attrs, "compute-0").state == rec.DONE
    assert ("flavors_with_extra_spec", ("evacuable",)) in nova.calls


def test_a_cloud_whose_flavors_mark_nothing_evacuates_everything(tmp_path):
    nova = MiniNova()
    nova.flavor_specs = {"gold": {"evacuable": "false"}}
    sid = nova.add_server("compute-0").id
    nova.fence("compute-0")
    run(tmp_path, nova)
    assert nova.evacuations == {sid: 1}


class PolicyRefusesFlavors(MiniNova):
    def flavors_with_extra_spec(self, key):
        raise NovaForbidden("listing flavors: 403 policy does not allow os_compute_api:flavors:detail")


def test_a_flavor_listing_refused_by_policy_falls_back_to_the_hosts_flavors(tmp_path, caplog):
    nova = PolicyRefusesFlavors()
    sid = nova.add_server("compute-0").id
    nova.fence("compute-0")
    with caplog.at_level(logging.WARNING, logger="test-evacuation"):
        run(tmp_path, nova)
    assert nova.evacuations == {sid: 1}
    assert "cannot list the cloud's flavors" in caplog.text


def test_a_failed_flavor_listing_makes_the_plan_wait_not_guess(tmp_path):
    nova = MiniNova()
    nova.flavor_specs = {"gold": {"evacuable": "true"}}
    unmarked = failed_host_with_an_unmarked_server(nova)
    real = nova.flavors_with_extra_spec
    failures = []

    def flaky(key):
        if not failures:
            failures.append(key)
            raise_unavailable()
        return real(key)
    nova.flavors_with_extra_spec = flaky
    engine, attrs, _ = make(tmp_path, nova, gate_recheck=0.1)
    flag(attrs, "compute-0")
    try:
        assert engine.run_until_idle(10)
        assert record(attrs, "compute-0") is not None and record(attrs, "compute-0").state == rec.DONE
    finally:
        engine.close()
    assert failures and unmarked not in nova.evacuations


def raise_unavailable():
    from computeha.ocf_lib.nova import NovaUnavailable
    raise NovaUnavailable("listing flavors: 503")
