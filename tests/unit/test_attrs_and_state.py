"""Cluster attribute parsing, read-back confirmation, per-instance state files, deadlines."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from computeha.ocf_lib import attrs
from computeha.ocf_lib.deadline import Deadline, DeadlineExceeded, ocf_timeout
from computeha.ocf_lib.runner import Result
from computeha.ocf_lib.state import StateDir
from tests.fakes.memory_attributes import MemoryAttributes

ATTRD_XML = """<pacemaker-result api-version="2.25" request="attrd_updater --output-as=xml -Q -A -n computeha-evacuate">
  <attribute name="computeha-evacuate" value="requested;1700000000;fence_compute" host="compute-0"/>
  <attribute name="computeha-evacuate" value="" host="compute-1"/>
  <status code="0" message="OK"/>
</pacemaker-result>"""


class ScriptedRunner:
    def __init__(self, stdout: str, returncode: int = 0, stderr: str = "") -> None:
        self.result = (stdout, returncode, stderr)
        self.calls = []

    def run(self, argv, timeout, stdin=None, extra_env=None):
        self.calls.append(list(argv))
        out, rc, err = self.result
        return Result(tuple(argv), rc, out, err)


def test_attrd_query_is_parsed_from_xml_and_empty_means_unset() -> None:
    runner = ScriptedRunner(ATTRD_XML)
    store = attrs.AttrdAttributes(runner)
    assert store.get_all("computeha-evacuate") == {"compute-0": "requested;1700000000;fence_compute"}
    assert runner.calls[0][:3] == ["attrd_updater", "--output-as=xml", "-Q"]


def test_attrd_update_uses_list_arguments_and_private_flag() -> None:
    runner = ScriptedRunner("")
    attrs.AttrdAttributes(runner, private=True).set("compute-0", "evacuate", "yes")
    assert runner.calls == [["attrd_updater", "-n", "evacuate", "-N", "compute-0", "-U", "yes", "-p"]]


def test_a_failing_tool_raises_a_one_line_error() -> None:
    store = attrs.CibAttributes(ScriptedRunner("", 1, "Could not connect\nto the CIB"))
    with pytest.raises(attrs.ClusterAttributeError) as err:
        store.set("compute-0", "computeha-evacuate", "requested;1;x")
    assert "\n" not in str(err.value) and "Could not connect to the CIB" in str(err.value)


def test_unreadable_output_is_an_error_not_a_guess() -> None:
    with pytest.raises(attrs.ClusterAttributeError):
        attrs.AttrdAttributes(ScriptedRunner("name=evacuate value=yes")).get_all("evacuate")


def test_set_and_confirm_reads_back_before_returning() -> None:
    class Slow(MemoryAttributes):
        def __init__(self):
            super().__init__()
            self.reads = 0

        def get(self, node, name):
            self.reads += 1
            return super().get(node, name) if self.reads > 2 else None
    store = Slow()
    attrs.set_and_confirm(store, "c0", "a", "v", Deadline(5))
    assert store.reads == 3
    class Lost(MemoryAttributes):
        def get(self, node, name):
            return None
    with pytest.raises(DeadlineExceeded):
        attrs.set_and_confirm(Lost(), "c0", "a", "v", Deadline(0.3))


def test_state_files_are_atomic_and_per_instance(tmp_path: Path) -> None:
    one, two = StateDir(str(tmp_path), "Agent", "res:1"), StateDir(str(tmp_path), "Agent", "res:2")
    one.write_json("progress", {"a": 1})
    assert one.read_json("progress") == {"a": 1} and two.read_json("progress") is None
    assert not [n for n in os.listdir(one.path) if n.startswith(".tmp")]
    (Path(one.path) / "progress").write_text("{torn")
    assert one.read_json("progress", default={}) == {}
    one.clear()
    assert not os.path.exists(one.path)


def test_deadline_from_the_action_timeout_keeps_a_margin() -> None:
    assert ocf_timeout({"OCF_RESKEY_CRM_meta_timeout": "20000"}, 5) == 20.0
    assert ocf_timeout({"OCF_RESKEY_CRM_meta_timeout": "junk"}, 5) == 5
    deadline = Deadline.for_action(20)
    assert 17.5 <= deadline.remaining() <= 18.0
    assert Deadline.for_action(200).remaining() <= 190.0


def test_poll_is_bounded_and_returns_the_first_result() -> None:
    now = [0.0]
    deadline = Deadline(3, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    answers = iter([None, None, "ready"])
    assert deadline.poll(lambda: next(answers), interval=0.5) == "ready"
    with pytest.raises(DeadlineExceeded) as err:
        deadline.poll(lambda: None, what="the moon")
    assert "the moon" in str(err.value) and now[0] >= 3


def test_children_do_not_inherit_instance_parameters(tmp_path: Path) -> None:
    from computeha.ocf_lib.runner import Runner
    runner = Runner({"PATH": "/usr/bin:/bin", "OCF_RESKEY_password": "leak-me-not", "OCF_ROOT": "/usr/lib/ocf",
                     "LANG": "de_DE.UTF-8"})
    result = runner.run(["env"], timeout=10)
    assert result.ok
    assert "leak-me-not" not in result.stdout and "OCF_RESKEY_" not in result.stdout
    assert "OCF_ROOT=/usr/lib/ocf" in result.stdout and "LC_ALL=C" in result.stdout and "LANG=" not in result.stdout
    with pytest.raises(TypeError):
        runner.run("env", timeout=10)  # a shell string is refused
