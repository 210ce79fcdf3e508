"""The parameter table: typing, defaults, aliases, validation of every problem at once."""
from __future__ import annotations

import pytest

from computeha.ocf_lib.exitcodes import Ocf
from computeha.ocf_lib.params import Kind, Param, ParamTable, fold

TABLE = ParamTable([
    Param("auth_url", Kind.STRING, "Keystone URL", required=True),
    Param("password", Kind.STRING, "Password", secret=True, aliases=("passwd",)),
    Param("project_name", Kind.STRING, "Project", aliases=("tenant_name",), default="admin"),
    Param("insecure", Kind.BOOLEAN, "Skip TLS verification", default=False),
    Param("workers", Kind.INTEGER, "Concurrent evacuations", default=4, minimum=1, maximum=64),
    Param("delay", Kind.SECONDS, "Delay", default=0, minimum=0),
    Param("policy", Kind.SELECT, "Local disks", choices=("rebuild", "skip"), default="rebuild"),
    Param("url_check", Kind.STRING, "Must be http(s)", check=lambda v: None if v.startswith("http") else "not a URL"),
])


def parse(**raw: str):
    return TABLE.parse(raw)


def test_defaults_apply_and_given_tracks_operator_input() -> None:
    values, problems = parse(auth_url="http://k/v3")
    assert problems == []
    assert values.project_name == "admin" and values.workers == 4 and values.insecure is False
    assert values.given("auth_url") and not values.given("workers")


@pytest.mark.parametrize("text,expected", [("yes", True), ("TRUE", True), ("1", True), ("on", True), ("ja", True),
                                           ("no", False), ("0", False), ("off", False), ("False", False)])
def test_booleans_are_real_booleans(text: str, expected: bool) -> None:
    values, problems = parse(auth_url="x", insecure=text)
    assert problems == [] and values.insecure is expected


def test_insecure_zero_means_verify() -> None:
    values, _ = parse(auth_url="x", insecure="0")
    assert values.insecure is False


def test_every_problem_is_reported_at_once() -> None:
    _, problems = parse(insecure="maybe", workers="many", delay="soon", policy="fast")
    names = sorted(p.param for p in problems)
    assert names == ["auth_url", "delay", "insecure", "policy", "workers"]
    assert all(p.code == Ocf.ERR_CONFIGURED for p in problems)
    assert any("required" in p.message for p in problems if p.param == "auth_url")


def test_bounds_and_units() -> None:
    values, problems = parse(auth_url="x", workers="64", delay="1.5min")
    assert problems == [] and values.workers == 64 and values.delay == 90.0
    _, problems = parse(auth_url="x", workers="65")
    assert [p.param for p in problems] == ["workers"] and "at most 64" in problems[0].message
    values, problems = parse(auth_url="x", delay="500ms")
    assert problems == [] and values.delay == 0.5


def test_select_is_case_insensitive_and_canonical() -> None:
    values, problems = parse(auth_url="x", policy="SKIP")
    assert problems == [] and values.policy == "skip"


def test_aliases_are_accepted_and_the_canonical_name_wins() -> None:
    values, _ = parse(auth_url="x", tenant_name="legacy")
    assert values.project_name == "legacy"
    values, _ = parse(auth_url="x", tenant_name="legacy", project_name="new")
    assert values.project_name == "new"
    values, _ = TABLE.parse({"auth-url": "x", "passwd": "s3cret!"})
    assert values.password == "s3cret!"


def test_secret_values_never_appear_in_problems_or_redacted_view() -> None:
    table = ParamTable([Param("password", Kind.INTEGER, "a numeric secret", secret=True)])
    _, problems = table.parse({"password": "hunter2-not-a-number"})
    assert problems and "hunter2" not in str(problems[0])
    values, _ = parse(auth_url="x", password="topsecret")
    assert values.redacted()["password"] == "****"
    assert values.secrets() == ["topsecret"]


def test_custom_check_runs_on_typed_value() -> None:
    _, problems = parse(auth_url="x", url_check="ftp://x")
    assert [str(p) for p in problems] == ["url_check: not a URL"]


def test_empty_text_counts_as_unset() -> None:
    values, problems = parse(auth_url="x", workers="  ")
    assert problems == [] and values.workers == 4


def test_table_rejects_duplicate_names_and_invalid_declarations() -> None:
    with pytest.raises(ValueError):
        ParamTable([Param("a", Kind.STRING, "a"), Param("b", Kind.STRING, "b", aliases=("a",))])
    with pytest.raises(ValueError):
        Param("s", Kind.SELECT, "no choices")
    with pytest.raises(ValueError):
        Param("r", Kind.STRING, "required with default", required=True, default="x")


def test_names_fold_dash_and_underscore() -> None:
    assert fold("power-timeout") == fold("POWER_TIMEOUT") == "power_timeout"
    assert TABLE["Auth-URL"].name == "auth_url"
