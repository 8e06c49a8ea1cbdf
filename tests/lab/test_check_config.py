"""`ipkeeperd --check-config` on a lab server: the shipped example passes, each broken
configuration is refused with the right line, and nothing is created either way."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ipkeeper.lab.topology import Topology

pytestmark = pytest.mark.lab

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "ipkeeper.toml.example"
KEY = "0123456789abcdef" * 4


class Setup:
    """The example configuration with its files moved under a test directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.etc = root / "etc"
        self.etc.mkdir(mode=0o700)
        self.state = root / "state"
        self.tunables = root / "default-ipkeeper"
        self.key = self.etc / "cluster.key"
        self.token = self.etc / "api.token"
        self.config = self.etc / "ipkeeper.toml"
        self.text = (
            EXAMPLE.read_text()
            .replace("/etc/ipkeeper/", f"{self.etc}/")
            .replace("/var/lib/ipkeeper", str(self.state))
            .replace("/etc/default/ipkeeper", str(self.tunables))
            .replace("/run/ipkeeper/", f"{root}/run/")
        )
        self.write_secret(self.key, KEY)

    @staticmethod
    def write_secret(path: Path, text: str, mode: int = 0o600) -> None:
        path.write_text(text + "\n")
        path.chmod(mode)

    def check(self) -> tuple[int, list[str], str]:
        """Run the check in s1's namespace; it must leave the test directory as it was."""
        self.config.write_text(self.text)
        before = sorted(self.root.rglob("*"))
        proc = subprocess.run(
            [sys.executable, "-m", "ipkeeper.lab.nsexec", "ipk-s1", "--",
             sys.executable, "-m", "ipkeeper.daemon", "--check-config", "--config", str(self.config)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert sorted(self.root.rglob("*")) == before  # no state directory, database or socket
        return proc.returncode, proc.stderr.splitlines(), proc.stdout


@pytest.fixture
def setup(tmp_path: Path, lab: Topology) -> Setup:
    return Setup(tmp_path)


def test_the_example_passes_and_nothing_is_created(setup: Setup) -> None:
    code, problems, out = setup.check()
    assert (code, problems) == (0, [])
    assert "configuration OK (server s1, 1 peer(s), 2 comm path(s))" in out


def broken_toml(s: Setup) -> None:
    s.text = s.text.replace('name = "s1"', 'name = "s1', 1)


def key_readable(s: Setup) -> None:
    s.key.chmod(0o644)


def key_short(s: Setup) -> None:
    s.write_secret(s.key, "short")


def address_elsewhere(s: Setup) -> None:
    s.text = s.text.replace('local = "198.18.1.11"', 'local = "198.18.1.99"')


def bad_tunables(s: Setup) -> None:
    s.tunables.write_text("HBEAT_MISSES=many\nHBEAT_INTERVL=0.1\n")


def open_state_dir(s: Setup) -> None:
    s.state.mkdir(mode=0o755)
    s.state.chmod(0o755)


def bad_fields(s: Setup) -> None:
    s.text = s.text.replace('name = "s1"', 'nmae = "s1"').replace("port = 7470", "port = 70000")


def token_missing(s: Setup) -> None:
    s.text = s.text.replace("# listen =", "listen =").replace("# token_file =", "token_file =")


CASES: list[tuple[Callable[[Setup], None], list[str]]] = [
    (broken_toml, ["{config}: not valid TOML: Illegal character '\\n' (at line 8, column 11)"]),
    (key_readable, ["cluster.key_file: {key}: mode 0644 lets others read it; chmod 600"]),
    (key_short, ["cluster.key_file: {key}: it must hold at least 16 characters"]),
    (address_elsewhere, ["peer.0.paths.1.local: 198.18.1.99 (a path to s2) is not an address of this server"]),
    (bad_tunables, [
        "server.tunables: {tunables}: HBEAT_MISSES='many' must be a whole number",
        "server.tunables: {tunables}: HBEAT_INTERVL is not a tunable (see `ipkeeper tunables`)",
    ]),
    (open_state_dir, ["server.state_dir: {state}: mode 0755 lets others in; chmod 700"]),
    (bad_fields, [
        "{config}: server.name: Field required",
        "{config}: server.nmae: Extra inputs are not permitted",
        "{config}: cluster.port: Input should be less than 65536",
    ]),
    (token_missing, ["api.token_file: {token}: No such file or directory"]),
]  # fmt: skip


@pytest.mark.parametrize(("breakage", "expected"), CASES, ids=[c[0].__name__ for c in CASES])
def test_a_broken_configuration_is_refused_with_one_line_per_problem(
    setup: Setup, breakage: Callable[[Setup], None], expected: list[str]
) -> None:
    breakage(setup)
    code, problems, _ = setup.check()
    names = {k: str(v) for k, v in vars(setup).items() if isinstance(v, Path)}
    assert code == 1
    assert problems == [f"ipkeeperd: {line.format(**names)}" for line in expected]


def test_the_daemon_refuses_a_missing_key_before_creating_anything(setup: Setup) -> None:
    setup.key.unlink()
    setup.config.write_text(setup.text)
    before = sorted(setup.root.rglob("*"))
    proc = subprocess.run(
        [sys.executable, "-m", "ipkeeper.lab.nsexec", "ipk-s1", "--",
         sys.executable, "-m", "ipkeeper.daemon", "--config", str(setup.config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"ipkeeperd: error: cluster.key_file: {setup.key}: No such file or directory"
    ]
    assert sorted(setup.root.rglob("*")) == before  # no state directory, no database
