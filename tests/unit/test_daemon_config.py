"""The daemon's TOML configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipkeeper.config.daemon import ConfigError, load
from ipkeeper.lab.daemons import render_config
from ipkeeper.lab.topology import build_topology


def test_the_lab_configuration_is_valid(tmp_path: Path) -> None:
    topo = build_topology(3)
    path = tmp_path / "c.toml"
    path.write_text(render_config(topo, topo.node("s2")))
    config = load(path)
    assert config.name == "s2"
    assert [p.name for p in config.peer] == ["s1", "s3"]
    assert [str(p.remote) for p in config.peer[0].paths] == ["198.18.0.11", "198.18.1.11"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[server]\n", "server.name: Field required"),
        ('[server]\nname = "a b"\n', "server.name: Value error, must be 1-63"),
        ('[server]\nname = "s1"\nbogus = 1\n', "server.bogus: Extra inputs are not permitted"),
        ('[server]\nname = "s1"\n[cluster]\nport = 0\n', "cluster.port: Input should be greater than 0"),
        ('[server]\nname = "s1"\n[[peer]]\nname = "s1"\npaths = [{local="198.18.0.1", remote="198.18.0.2"}]\n', "peer: s1 is this server's own name"),
        ('[server]\nname = "s1"\n[[peer]]\nname = "s2"\npaths = [{local="198.18.0.1", remote="2001:db8::2"}]\n', "local and remote must be the same IP version"),
        ("[server\n", "not valid TOML"),
        ('[server]\nname = "s1"\n[api]\nlisten = "198.18.0.11:7480"\ntoken_file = "/t"\n', "api: Value error, listen 198.18.0.11:7480 is not a loopback address: set tls_cert and tls_key (ipkeeper cert create), or insecure = true"),
        ('[server]\nname = "s1"\n[api]\nlisten = "[2001:db8::11]:7480"\ntoken_file = "/t"\n', "is not a loopback address"),
        ('[server]\nname = "s1"\n[api]\ntls_cert = "/c"\n', "tls_cert and tls_key go together"),
        ('[server]\nname = "s1"\n[api]\ntls_cert = "/c"\ntls_key = "/k"\ninsecure = true\n', "choose TLS or plain HTTP"),
        ('[server]\nname = "s1"\n[api]\nlisten = "198.18.0.11:7480"\n', "token_file is required"),
    ],
)  # fmt: skip
def test_bad_configuration_is_one_clear_line(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load(path)
    assert error in str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    "api",
    [
        'listen = "127.0.0.1:7480"\ntoken_file = "/t"',
        'listen = "[::1]:7480"\ntoken_file = "/t"',
        'listen = "198.18.0.11:7480"\ntoken_file = "/t"\ninsecure = true',
        'listen = "198.18.0.11:7480"\ntoken_file = "/t"\ntls_cert = "/c"\ntls_key = "/k"',
    ],
)
def test_plain_http_only_on_loopback_or_when_insecure_is_said(tmp_path: Path, api: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[server]\nname = "s1"\n[api]\n{api}\n')
    config = load(path)
    assert config.api.tls == ("tls_cert" in api)
