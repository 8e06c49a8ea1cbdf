"""The wheel as a user installs it: built, put into a fresh virtual environment with only
its run-time dependencies, and run as a two-server lab (its API on HTTPS, as the lab's
always is) that fails over."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ipkeeper.lab import control, daemons, faults
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, holders, over_tcp

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
VIP = "198.18.0.50"
TAG = f"ip-{VIP}"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel and, pinned by requirements.lock, what it needs."""
    where = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(where), str(REPO)],
        check=True, timeout=300,
    )  # fmt: skip
    (wheel,) = where.glob("ipkeeper-*.whl")
    env = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, timeout=120)
    subprocess.run(
        [str(env / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", str(REPO / "requirements.lock"), str(wheel)],
        check=True, timeout=600,
    )  # fmt: skip
    return env


@pytest.fixture(scope="module")
def wheel_lab(venv: Path) -> Iterator[Topology]:
    """The lab, its daemons run by the venv's ipkeeperd."""
    control.down()
    os.environ["IPKEEPER_LAB_IPKEEPERD"] = str(venv / "bin" / "ipkeeperd")
    try:
        yield control.up(2)
    finally:
        del os.environ["IPKEEPER_LAB_IPKEEPERD"]
        control.down()


def venv_cli(venv: Path, server: LabServer, *args: str) -> dict:
    proc = subprocess.run(
        [str(venv / "bin" / "ipkeeper"), *args, "--json"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "IPKEEPER_SOCKET": str(server.socket)},
    )  # fmt: skip
    # A degraded cluster's status (a peer crashed) exits 4 and up with its JSON (cli/health.py).
    degraded = args[0] == "status" and proc.returncode >= 4
    assert proc.returncode == 0 or degraded, proc.stderr
    result: dict = json.loads(proc.stdout)
    return result


def test_the_venv_holds_only_run_time_dependencies(venv: Path) -> None:
    listed = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "list", "--format=json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    names = {p["name"].lower().replace("_", "-") for p in json.loads(listed)}
    assert {"ipkeeper", "fastapi", "pyroute2", "fastapi-offline", "cryptography"} <= names
    assert names & {"pytest", "ruff", "mypy", "playwright", "hypothesis", "schemathesis"} == set()
    where = subprocess.run(
        [str(venv / "bin/python"), "-c", "import ipkeeper; print(ipkeeper.__file__)"],
        capture_output=True, text=True, check=True, cwd="/",
    ).stdout  # fmt: skip
    assert where.startswith(str(venv))  # the wheel's copy, not the development tree


def test_a_lab_run_from_the_wheel_fails_over(venv: Path, wheel_lab: Topology) -> None:
    s1, s2 = (LabServer(wheel_lab.node(n)) for n in ("s1", "s2"))
    for node in wheel_lab.servers:
        found = daemons.pid(node)
        assert found is not None
        argv = Path(f"/proc/{found}/cmdline").read_bytes().split(b"\0")
        assert str(venv / "bin" / "ipkeeperd").encode() in argv

    assert venv_cli(venv, s1, "create", "ip", "--address", VIP, "--netmask", "24")["state"] == "ISP"
    venv_cli(venv, s1, "extend", TAG, "--target", "s2")
    transport = httpx.HTTPTransport(uds=str(s1.socket))
    with httpx.Client(transport=transport, base_url="http://ipkeeperd", timeout=30) as http:
        assert "<html" in http.get("/").text.lower()  # the GUI ships in the wheel
        assert http.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
        assert http.get("/static/api-docs.js").status_code == 200
    # The lab's TCP API is HTTPS (its certificate, its admin token): the wheel's daemon too.
    token = daemons.token_path().read_text().strip()
    url = daemons.api_url(wheel_lab.node("s1"))
    reply = over_tcp(wheel_lab.node("client"), url, lambda h: h.get("/api/v1/status"), token)
    assert (reply.status_code, reply.url.scheme) == (200, "https")
    assert reply.json()["security"]["api"]["tls"] is True

    faults.crash(wheel_lab.node("s1"))
    try:
        wait_until(lambda: s2.has_address(VIP), 10, message="s2 takes the VIP")
        status = venv_cli(venv, s2, "status")
        (res,) = status["resources"]
        assert res["servers"]["s2"]["state"] == "ISP"
    finally:
        faults.recover(wheel_lab.node("s1"))
    wait_until(lambda: all(x["alive"] for x in s2.status()["servers"]), 15, message="s1 back")
    wait_until(lambda: holders([s1, s2], VIP) == ["s2"], 10, message="s1 gives the VIP up")
