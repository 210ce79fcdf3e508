"""Selection rules, one server at a time (pure functions)."""
from __future__ import annotations

from computeha.agents import evacuation_select as sel
from computeha.agents.evacuation_params import TABLE, Settings
from computeha.ocf_lib.nova import Aggregate, Server


def server(**kw) -> Server:
    base = dict(id="s1", name="s1", status="ACTIVE", task_state=None, vm_state="active", power_state=1,
                host="compute-0", project_id="p1", image_id="img-1")
    base.update(kw)
    return Server(**base)


NOTHING = sel.CloudMarkers()
SOMETHING = sel.CloudMarkers(anything_marked=True)


def test_legacy_rule_everything_when_nothing_is_marked():
    decision = sel.decide(server(), Settings(), NOTHING)
    assert decision.action == sel.EVACUATE and "nothing in the cloud is marked" in decision.reason


def test_only_marked_servers_once_the_cloud_marks_any():
    assert sel.decide(server(), Settings(), SOMETHING).action == sel.SKIP
    assert sel.decide(server(tags=("evacuable",)), Settings(), SOMETHING).action == sel.EVACUATE
    assert sel.decide(server(), Settings(selection="all"), SOMETHING).action == sel.EVACUATE
    assert sel.decide(server(), Settings(selection="marked"), NOTHING).action == sel.SKIP


def test_every_marker_kind_counts():
    s = Settings(selection="marked")
    assert sel.decide(server(flavor_extra_specs={"evacuable": "True"}), s, NOTHING).action == sel.EVACUATE
    assert sel.decide(server(metadata={"evacuable": "yes"}), s, NOTHING).action == sel.EVACUATE
    assert sel.decide(server(), s, sel.CloudMarkers(marked_image_ids=frozenset({"img-1"}))).action == sel.EVACUATE
    agg = sel.marked_aggregate_hosts([Aggregate("1", "ha", ("compute-0",), {"evacuable": "true"}),
                                      Aggregate("2", "x", ("compute-9",), {})], "evacuable")
    assert agg == frozenset({"compute-0"})
    assert sel.decide(server(), s, sel.CloudMarkers(marked_aggregate_hosts=agg)).action == sel.EVACUATE
    assert sel.decide(server(tags=("ha",)), Settings(selection="marked", marker="ha"), NOTHING).action == sel.EVACUATE


def test_states_nova_cannot_evacuate_are_reported_not_touched():
    for status in ("PAUSED", "SUSPENDED", "RESCUE", "VERIFY_RESIZE", "BUILD", "MIGRATING"):
        assert sel.decide(server(status=status), Settings(), NOTHING).action == sel.REPORT
    for status in ("ACTIVE", "SHUTOFF", "ERROR"):
        assert sel.decide(server(status=status), Settings(), NOTHING).action == sel.EVACUATE


def test_power_state_expectation():
    assert sel.decide(server(status="SHUTOFF"), Settings(), NOTHING).expect_status == "SHUTOFF"
    assert sel.decide(server(status="ACTIVE"), Settings(), NOTHING).expect_status == "ACTIVE"


def test_exclusions_win_over_markers():
    s = Settings(exclude_projects=frozenset({"octavia"}))
    assert sel.decide(server(project_id="octavia", tags=("evacuable",)), s, NOTHING).action == sel.SKIP
    m = sel.CloudMarkers(excluded_image_ids=frozenset({"img-1"}))
    assert sel.decide(server(tags=("evacuable",)), Settings(), m).action == sel.SKIP
    assert sel.decide(server(metadata={"evacuable": "false"}), Settings(), NOTHING).action == sel.SKIP


def test_local_disk_policy_and_boot_from_volume():
    local = Settings(no_shared_storage=True, local_disk_policy="skip")
    assert sel.decide(server(), local, NOTHING).action == sel.SKIP
    bfv = sel.decide(server(image_id=""), local, NOTHING)
    assert bfv.action == sel.EVACUATE and bfv.disk == "volume"
    assert sel.decide(server(), Settings(no_shared_storage=True), NOTHING).disk == "local"
    assert sel.decide(server(), Settings(), NOTHING).disk == "shared"


def test_priority_from_server_metadata_then_flavor():
    assert sel.priority_of(server(metadata={"evacuation_priority": "7"},
                                  flavor_extra_specs={"evacuation_priority": "3"})) == 7
    assert sel.priority_of(server(flavor_extra_specs={"evacuation_priority": "3"})) == 3
    assert sel.priority_of(server(metadata={"evacuation_priority": "high"})) == 0


def test_settings_from_parameters():
    values, problems = TABLE.parse({"auth_url": "http://k:5000/v3", "exclude_images": "img-9, tag:amphora",
                                    "exclude_projects": "a,b", "host_map": "c0:compute-0.example"})
    assert problems == []
    s = Settings.from_values(values)
    assert s.exclude_image_ids == frozenset({"img-9"}) and s.exclude_image_tags == ("amphora",)
    assert s.exclude_projects == frozenset({"a", "b"}) and s.host_map == {"c0": "compute-0.example"}
    assert s.max_parallel == 8 and s.selection == "auto" and s.local_disk_policy == "rebuild"


def test_cloud_markers_count_a_flavor_only_when_its_marker_is_true():
    def flavors(*values):
        asked = []

        def values_of_all_flavors():
            asked.append(1)
            return list(values)
        return values_of_all_flavors, asked

    unmarked = [server()]
    for values, marked in ((("false",), False), (("no", "true"), True), ((), False)):
        lister, _ = flavors(*values)
        got = sel.cloud_markers("marked", "evacuable", unmarked, ["img-x"], flavor_marker_values=lister)
        assert got.anything_marked is marked, values
        assert got.excluded_image_ids == frozenset({"img-x"})
    # the flavor listing is the costly fact: not asked once anything else is marked
    lister, asked = flavors("true")
    got = sel.cloud_markers("marked", "evacuable", unmarked, [], aggregates=[
        Aggregate(id="1", name="ha", hosts=("compute-0",), metadata={"evacuable": "true"})],
        flavor_marker_values=lister)
    assert got.anything_marked and got.marked_aggregate_hosts == frozenset({"compute-0"}) and not asked
    assert sel.cloud_markers("all", "evacuable", unmarked, ["i"], flavor_marker_values=lister) == \
        sel.CloudMarkers(excluded_image_ids=frozenset({"i"}))
