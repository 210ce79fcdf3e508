"""OCF dispatch: actions, probes, exit codes, exit reasons, never a traceback."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, List

import pytest

from computeha.ocf_lib import ocf
from computeha.ocf_lib.exitcodes import AgentError, Ocf
from computeha.ocf_lib.params import Problem
from tests.contract.sample_agents import SampleOcf


def run(action_argv: List[str], env: Dict[str, str], agent: ocf.OcfAgent | None = None):
    out, err = io.StringIO(), io.StringIO()
    code = ocf.run(agent or SampleOcf(), ["ComputehaSample", *action_argv], env, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def env(tmp_path: Path) -> Dict[str, str]:
    return {"OCF_ROOT": "/usr/lib/ocf", "OCF_RESOURCE_INSTANCE": "s1", "HA_RSCTMP": str(tmp_path),
            "OCF_RESKEY_CRM_meta_timeout": "20000", "OCF_RESKEY_CRM_meta_interval": "10000"}


def test_meta_data_needs_no_environment() -> None:
    code, out, err = run(["meta-data"], {})
    assert code == 0 and out.startswith('<?xml version="1.0"?>') and err == ""


def test_unknown_and_missing_actions_return_3(env) -> None:
    assert run(["frobnicate"], env)[0] == 3
    assert run([], env)[0] == 3
    for optional in ("notify", "promote", "demote", "reload", "migrate_to"):
        assert run([optional], env)[0] == Ocf.ERR_UNIMPLEMENTED


def test_extra_arguments_are_ignored(env) -> None:
    assert run(["monitor", "extra", "junk"], env)[0] == 7
    assert run(["start", "x"], env)[0] == 0
    assert run(["monitor", "y"], env)[0] == 0


def test_lifecycle_is_idempotent(env) -> None:
    assert run(["monitor"], env)[0] == 7
    assert run(["stop"], env)[0] == 0
    assert run(["start"], env)[0] == 0
    assert run(["start"], env)[0] == 0
    assert run(["monitor"], env)[0] == 0
    assert run(["stop"], env)[0] == 0
    assert run(["stop"], env)[0] == 0
    assert run(["monitor"], env)[0] == 7


def test_validate_all_reports_every_problem_with_its_code(env) -> None:
    env = {**env, "OCF_RESKEY_count": "0", "OCF_RESKEY_flag": "perhaps"}
    code, _, err = run(["validate-all"], env)
    assert code == Ocf.ERR_CONFIGURED
    assert "count" in err and "flag" in err
    assert err.strip().splitlines()[-1].startswith("ocf-exit-reason:")


def test_validate_all_level_10_checks_the_local_environment(env, tmp_path: Path) -> None:
    env = {**env, "OCF_RESKEY_required_path": str(tmp_path / "absent")}
    assert run(["validate-all"], env)[0] == 0  # level 0: parameters only
    code, _, err = run(["validate-all"], {**env, "OCF_CHECK_LEVEL": "10"})
    assert code == Ocf.ERR_ARGS and "does not exist" in err


def test_probe_of_a_misconfigured_stopped_resource_returns_7(env) -> None:
    probe = {**env, "OCF_RESKEY_CRM_meta_interval": "0", "OCF_RESKEY_count": "not-a-number"}
    code, _, err = run(["monitor"], probe)
    assert code == Ocf.NOT_RUNNING and "ocf-exit-reason" not in err
    assert run(["monitor"], {**probe, "OCF_RESKEY_CRM_meta_interval": ""})[0] == Ocf.NOT_RUNNING


def test_broken_config_on_a_running_resource_is_reported(env) -> None:
    assert run(["start"], env)[0] == 0
    code, _, err = run(["monitor"], {**env, "OCF_RESKEY_count": "x"})
    assert code == Ocf.ERR_CONFIGURED and "ocf-exit-reason:invalid configuration" in err


def test_stop_succeeds_with_a_broken_config_when_nothing_runs(env) -> None:
    assert run(["stop"], {**env, "OCF_RESKEY_count": "-5", "OCF_RESKEY_mode": "warp"})[0] == 0


def test_start_with_a_broken_config_returns_the_configuration_code(env) -> None:
    code, _, err = run(["start"], {**env, "OCF_RESKEY_mode": "warp"})
    assert code == Ocf.ERR_CONFIGURED and "mode" in err


def test_missing_instance_is_an_argument_error_except_for_validate(env) -> None:
    env.pop("OCF_RESOURCE_INSTANCE")
    assert run(["monitor"], env)[0] == Ocf.ERR_ARGS
    assert run(["validate-all"], env)[0] == 0


def test_a_foreign_ocf_major_version_is_an_error(env) -> None:
    code, _, err = run(["start"], {**env, "OCF_RA_VERSION_MAJOR": "2"})
    assert code != 0 and "version" in err
    assert run(["start"], {**env, "OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1"})[0] == 0


class Exploding(SampleOcf):
    def start(self, ctx: ocf.OcfContext) -> int:
        raise RuntimeError("boom\nsecond line with topsecret")

    def monitor(self, ctx: ocf.OcfContext) -> int:
        raise AgentError("backend refused", Ocf.ERR_PERM)


def test_exceptions_become_one_exit_reason_line_and_never_a_traceback(env) -> None:
    env = {**env, "OCF_RESKEY_password": "topsecret"}
    code, _, err = run(["start"], env, Exploding())
    assert code == Ocf.ERR_GENERIC
    assert "Traceback" not in err and "topsecret" not in err
    reasons = [line for line in err.splitlines() if line.startswith("ocf-exit-reason:")]
    assert len(reasons) == 1 and "boom second line" in reasons[0]
    code, _, err = run(["monitor"], env, Exploding())
    assert code == Ocf.ERR_PERM and err.strip().endswith("ocf-exit-reason:backend refused")


def test_exit_reason_prefix_is_honoured(env) -> None:
    code, _, err = run(["monitor"], {**env, "OCF_EXIT_REASON_PREFIX": "REASON>"}, Exploding())
    assert err.strip().endswith("REASON>backend refused")


def test_secrets_are_masked_in_logs(env, tmp_path: Path) -> None:
    logfile = tmp_path / "ha.log"
    env = {**env, "OCF_RESKEY_password": "hunter22", "HA_LOGFILE": str(logfile), "HA_LOGFACILITY": "none"}
    assert run(["start"], env)[0] == 0
    text = logfile.read_text()
    assert "started with label" in text and "hunter22" not in text and "****" in text


def test_debug_lines_only_when_ha_debug_is_set_and_not_zero(env, tmp_path: Path) -> None:
    class Chatty(SampleOcf):
        def monitor(self, ctx):
            ctx.log.debug("debug-marker")
            return Ocf.NOT_RUNNING
    logfile = tmp_path / "debug.log"
    base = {**env, "HA_LOGFILE": str(logfile)}
    run(["monitor"], {**base, "HA_debug": "0"}, Chatty())
    assert "debug-marker" not in logfile.read_text()
    run(["monitor"], {**base, "HA_debug": "1"}, Chatty())
    assert "debug-marker" in logfile.read_text()


def test_worst_code_prefers_the_fatal_configuration_error() -> None:
    problems = [Problem("a", "x", Ocf.ERR_ARGS), Problem("b", "y", Ocf.ERR_CONFIGURED),
                Problem("c", "z", Ocf.ERR_INSTALLED)]
    assert ocf.worst_code(problems) == Ocf.ERR_CONFIGURED
    assert ocf.worst_code(problems[:1]) == Ocf.ERR_ARGS
    assert ocf.worst_code([]) == Ocf.SUCCESS


def test_two_instances_keep_separate_state(env) -> None:
    assert run(["start"], env)[0] == 0
    other = {**env, "OCF_RESOURCE_INSTANCE": "s2"}
    assert run(["monitor"], other)[0] == 7
    assert run(["stop"], other)[0] == 0
    assert run(["monitor"], env)[0] == 0


def test_validate_all_reports_table_and_agent_problems_together(env, tmp_path: Path) -> None:
    env = {**env, "OCF_CHECK_LEVEL": "10", "OCF_RESKEY_count": "0",
           "OCF_RESKEY_required_path": str(tmp_path / "absent")}
    code, _, err = run(["validate-all"], env)
    assert code == Ocf.ERR_CONFIGURED
    assert "count" in err and "does not exist" in err
