"""The lab's topology as data (pure)."""

from __future__ import annotations

import pytest

from ipkeeper.lab.topology import ALLOWED, build_topology, is_lab_namespace, veth_name


def test_addresses_follow_the_spec() -> None:
    topo = build_topology(3)
    s3 = topo.node("s3")
    assert str(s3.address("eth0", 4)) == "198.18.0.13/24"
    assert str(s3.address("eth0", 6)) == "2001:db8::13/64"
    assert str(s3.address("eth1", 4)) == "198.18.1.13/24"
    assert str(topo.node("router").address()) == "198.18.0.1/24"
    assert str(topo.node("client").address("eth0", 6)) == "2001:db8::100/64"
    assert topo.namespaces == ("ipk-sw", "ipk-s1", "ipk-s2", "ipk-s3", "ipk-router", "ipk-client")


def test_every_address_is_a_documentation_address() -> None:
    topo = build_topology(9)
    for node in topo.nodes:
        for port in node.ports:
            assert len(veth_name(node, port)) <= 15
            for addr in port.addresses:
                assert any(addr.ip in net for net in ALLOWED)


def test_server_count_is_bounded() -> None:
    with pytest.raises(ValueError, match="servers"):
        build_topology(0)
    with pytest.raises(ValueError, match="servers"):
        build_topology(10)


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        ("ipk-sw", True),
        ("ipk-s1", True),
        ("ipk-s12", True),
        ("ipk-router", True),
        ("ipk-client", True),
        ("ipk-x", False),
        ("other", False),
        ("ipk-s1x", False),
    ],
)
def test_only_lab_namespaces_are_recognised(name: str, ours: bool) -> None:
    assert is_lab_namespace(name) is ours
