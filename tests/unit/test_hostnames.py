"""Pacemaker node name <-> Nova host mapping."""
from __future__ import annotations

import pytest

from computeha.ocf_lib.hostnames import HOSTNAME_PARAMS, HostMapper, HostMappingError, parse_host_map


def test_exact_short_and_fqdn():
    m = HostMapper(["compute-0", "compute-1.example.com"])
    assert m.to_nova("compute-0") == "compute-0"
    assert m.to_nova("compute-0.example.com") == "compute-0"  # Nova uses short names
    assert m.to_nova("compute-1") == "compute-1.example.com"  # Nova uses FQDNs
    assert m.to_nova("compute-1.example.com") == "compute-1.example.com"


def test_several_domains_ambiguous_is_an_error_naming_candidates():
    m = HostMapper(["c0.a.example", "c0.b.example", "c1.a.example"])
    assert m.to_nova("c1") == "c1.a.example"
    with pytest.raises(HostMappingError, match=r"ambiguous.*c0\.a\.example, c0\.b\.example.*domain or host_map"):
        m.to_nova("c0")
    assert m.to_nova("c0.b.example") == "c0.b.example"


def test_domain_parameter_decides():
    m = HostMapper(["c0.a.example", "c0.b.example"], domain="b.example")
    assert m.to_nova("c0") == "c0.b.example"
    assert m.to_pacemaker("c0.b.example") == "c0"
    with pytest.raises(HostMappingError, match="c9.b.example"):
        m.to_nova("c9")


def test_explicit_map_wins_and_must_exist():
    m = HostMapper(["hv-17.dc1", "c0"], host_map=parse_host_map("node-a:hv-17.dc1;node-b:gone"))
    assert m.to_nova("node-a") == "hv-17.dc1"
    assert m.to_pacemaker("hv-17.dc1") == "node-a"
    with pytest.raises(HostMappingError, match="maps node-b to gone"):
        m.to_nova("node-b")
    assert m.pairs() == [("c0", "c0"), ("node-a", "hv-17.dc1")]


def test_unknown_and_empty():
    m = HostMapper(["c0"])
    with pytest.raises(HostMappingError, match="no compute host named c5"):
        m.to_nova("c5")
    with pytest.raises(HostMappingError, match="no node name"):
        m.to_nova(" ")


@pytest.mark.parametrize("text,expected", [
    ("a:b", {"a": "b"}), ("a:b;c:d", {"a": "b", "c": "d"}), ("a=b, c=d", {"a": "b", "c": "d"}), ("", {}),
])
def test_parse_host_map(text, expected):
    assert parse_host_map(text) == expected


@pytest.mark.parametrize("text", ["a", "a:", ":b", "a:b;a:c", "a:b c"])
def test_parse_host_map_rejects(text):
    with pytest.raises(ValueError):
        parse_host_map(text)


def test_param_checks():
    values, problems = HOSTNAME_PARAMS.parse({"host_map": "a:x;b:x", "compute-domain": "bad domain"})
    assert sorted(p.param for p in problems) == ["domain", "host_map"]
    values, problems = HOSTNAME_PARAMS.parse({"compute_domain": "example.com"})
    assert problems == [] and values.domain == "example.com"
