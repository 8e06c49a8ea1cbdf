"""The ipkeeperd of every lab server: its configuration, start, stop and kill.

Each server gets its own directory under the lab directory holding its
configuration, tunables file, state directory (the SQLite database) and API
socket. Comm paths go over both networks, eth0 and eth1 (SPEC.md section 5).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path

from ipkeeper.config import tls
from ipkeeper.lab import control
from ipkeeper.lab import netns as ns
from ipkeeper.lab.topology import API_PORT, COMM_PORT, MAX_SERVERS, Node, Topology, build_topology


def server_dir(node: Node) -> Path:
    """The lab server's own directory."""
    return control.lab_dir() / node.name


def config_path(node: Node) -> Path:
    """The lab server's ipkeeperd configuration file."""
    return server_dir(node) / "ipkeeper.toml"


def tunables_path(node: Node) -> Path:
    """The lab server's tunables file (its /etc/default/ipkeeper)."""
    return server_dir(node) / "tunables"


def socket_path(node: Node) -> Path:
    """The lab server's API socket."""
    return server_dir(node) / "api.sock"


# The id under which the lab writes its cluster key (cluster/keys.py: "ID KEY" lines).
LAB_KEY_ID = 1


def key_path(node: Node) -> Path:
    """The lab server's cluster key file (each server has its own copy, so that a key can
    be rotated one server after the other, as on real servers)."""
    return server_dir(node) / "cluster.key"


def token_path() -> Path:
    """The lab's admin API token (the same for every server)."""
    return control.lab_dir() / "api.token"


def viewer_token_path() -> Path:
    """The lab's read-only (viewer) API token (the same for every server)."""
    return control.lab_dir() / "api.viewer.token"


def cert_path() -> Path:
    """The lab's self-signed TLS certificate; it names every lab server's LAN addresses."""
    return control.lab_dir() / "api.crt"


def cert_key_path() -> Path:
    """The private key of the lab's TLS certificate (0600)."""
    return control.lab_dir() / "api.key"


def api_url(node: Node) -> str:
    """The HTTPS URL of a lab server's API and GUI (reachable from inside the lab)."""
    return f"https://{node.address('eth0').ip}:{API_PORT}"


def _secret(path: Path, text: str | None = None) -> None:
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text if text is not None else secrets.token_hex(32) + "\n")


def _certificate() -> None:
    """One certificate for every lab server (as the lab has one token): it names s1..s9."""
    if cert_path().exists() and cert_key_path().exists():
        return
    cert_path().unlink(missing_ok=True)
    cert_key_path().unlink(missing_ok=True)
    every = build_topology(MAX_SERVERS).servers
    addresses = [a.ip for node in every for a in node.port("eth0").addresses]
    tls.create_self_signed(
        cert_path(),
        cert_key_path(),
        "ipkeeper lab",
        [node.name for node in every],
        [*addresses, ipaddress.ip_address("127.0.0.1")],
    )


def _cluster_keys(topology: Topology) -> None:
    """Every server's key file: a copy of the first one that exists, else a new key."""
    existing = [key_path(n) for n in topology.servers if key_path(n).exists()]
    text = existing[0].read_text() if existing else f"{LAB_KEY_ID} {secrets.token_hex(32)}\n"
    for node in topology.servers:
        _secret(key_path(node), text)


def render_config(topology: Topology, node: Node, witnesses: frozenset[str] = frozenset()) -> str:
    """The TOML configuration of lab server `node` (`witnesses`: servers that only vote)."""
    here = server_dir(node)
    lines = [
        "[server]",
        f'name = "{node.name}"',
        f'state_dir = "{here / "state"}"',
        f'tunables = "{tunables_path(node)}"',
        f"witness = {'true' if node.name in witnesses else 'false'}",
        "",
        "[api]",
        f'socket = "{socket_path(node)}"',
        f'listen = "{node.address("eth0").ip}:{API_PORT}"',
        f'token_file = "{token_path()}"',
        f'viewer_token_file = "{viewer_token_path()}"',
        f'tls_cert = "{cert_path()}"',
        f'tls_key = "{cert_key_path()}"',
        "",
        "[cluster]",
        f'key_file = "{key_path(node)}"',
        f"port = {COMM_PORT}",
    ]
    for peer in topology.servers:
        if peer is node:
            continue
        paths = ", ".join(
            f'{{ local = "{node.address(ifname).ip}", remote = "{peer.address(ifname).ip}" }}'
            for ifname in ("eth0", "eth1")
        )
        lines += ["", "[[peer]]", f'name = "{peer.name}"', f"paths = [{paths}]"]
        if peer.name in witnesses:
            lines.append("witness = true")
    return "\n".join(lines) + "\n"


def write_configs(topology: Topology, witnesses: frozenset[str] = frozenset()) -> None:
    """Write every server's configuration, the tunables files, the cluster keys, the
    tokens and the TLS certificate."""
    _secret(token_path())
    _secret(viewer_token_path())
    _certificate()
    for node in topology.servers:
        server_dir(node).mkdir(parents=True, exist_ok=True)
    _cluster_keys(topology)
    for node in topology.servers:
        config_path(node).write_text(render_config(topology, node, witnesses))
        config_path(node).chmod(0o644)  # ipkeeperd refuses files that others may change
        tunables = tunables_path(node)
        if not tunables.exists():
            tunables.write_text("# ipkeeper tunables for the lab (see `ipkeeper tunables`)\n")
            tunables.chmod(0o644)


def daemon_name(node: Node) -> str:
    """The name the lab records the daemon's PID under."""
    return f"ipkeeperd-{node.name}"


def pid(node: Node) -> int | None:
    """PID of the lab server's running daemon, or None."""
    found = control.recorded_pids().get(daemon_name(node))
    return found if found is not None and ns.alive(found) else None


def answers(node: Node) -> bool:
    """True when the daemon's API socket accepts a connection."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(0.5)
        try:
            sock.connect(str(socket_path(node)))
        except OSError:
            return False
    return True


def launch(node: Node) -> int:
    """Start the server's daemon unless it is running; its PID."""
    running = pid(node)
    if running is None:
        # IPKEEPER_LAB_IPKEEPERD: another ipkeeperd to run (an installed one, for package tests)
        program = os.environ.get("IPKEEPER_LAB_IPKEEPERD")
        command = [program] if program else [sys.executable, "-m", "ipkeeper.daemon"]
        argv = [*command, "--config", str(config_path(node))]
        running = control.spawn(node, daemon_name(node), argv)
    return running


def start(node: Node, wait: float = 30.0) -> int:
    """Start the server's daemon (unless running) and wait until its API answers."""
    running = launch(node)
    deadline = time.monotonic() + wait
    while not answers(node):
        if not ns.alive(running):
            log = control.lab_dir() / f"{daemon_name(node)}.log"
            tail = log.read_text().strip().splitlines()[-1:] if log.exists() else []
            raise control.LabError(
                node.name, f"ipkeeperd exited: {' '.join(tail) or 'see its log'}"
            )
        if time.monotonic() > deadline:
            raise control.LabError(node.name, f"ipkeeperd did not answer within {wait:.0f}s")
        time.sleep(0.05)
    return running


def stop(node: Node, grace: float = 10.0) -> None:
    """Stop the server's daemon gracefully (SIGTERM, then SIGKILL after `grace`)."""
    control.stop(daemon_name(node), grace)


def freeze(node: Node) -> None:
    """Stop the daemon in its tracks (SIGSTOP): it runs no more code until killed or continued."""
    found = pid(node)
    if found is not None:
        os.kill(found, signal.SIGSTOP)


def kill(node: Node) -> None:
    """kill -9 the server's daemon, as a crash would."""
    found = pid(node)
    if found is not None:
        os.kill(found, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while ns.alive(found) and time.monotonic() < deadline:
            time.sleep(0.01)


def start_all(topology: Topology) -> None:
    """Start every server's daemon (all at once, so they find each other), wait for each."""
    for node in topology.servers:
        launch(node)
    for node in topology.servers:
        start(node)
