"""`ipkeeperd --check-config` on a lab server: the shipped example passes, each broken
configuration is refused with the right line, and nothing is created either way."""

from __future__ import annotations

import datetime
import ipaddress
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ipkeeper.config import tls
from ipkeeper.lab.topology import Topology

pytestmark = pytest.mark.lab

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "ipkeeper.toml.example"
KEY = "0123456789abcdef" * 4
NOBODY = 65534


class Setup:
    """The example configuration with its files moved under a test directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.etc = root / "etc"
        self.etc.mkdir(mode=0o700)
        self.state = root / "state"
        self.database = self.state / "ipkeeper.db"
        self.tunables = root / "default-ipkeeper"
        self.key = self.etc / "cluster.key"
        self.token = self.etc / "api.token"
        self.viewer = self.etc / "api.viewer.token"
        self.cert = self.etc / "api.crt"
        self.tls_key = self.etc / "api.key"
        self.config = self.etc / "ipkeeper.toml"
        self.text = (
            EXAMPLE.read_text()
            .replace("/etc/ipkeeper/", f"{self.etc}/")
            .replace("/var/lib/ipkeeper", str(self.state))
            .replace("/etc/default/ipkeeper", str(self.tunables))
            .replace("/run/ipkeeper/", f"{root}/run/")
        )
        self.write_secret(self.key, KEY)

    def listen(self, *files: str) -> None:
        """Uncomment `listen` and the given [api] settings of the example."""
        for name in ("listen", *files):
            self.text = self.text.replace(f"#{name} =", f"{name} =")

    def https(self) -> None:
        """The TCP API over HTTPS with both tokens, every file in place."""
        self.listen("token_file", "viewer_token_file", "tls_cert", "tls_key")
        self.write_secret(self.token, "a" * 32)
        self.write_secret(self.viewer, "v" * 32)
        tls.create_self_signed(
            self.cert, self.tls_key, "s1", [], [ipaddress.ip_address("198.18.0.11")]
        )

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
    assert out.endswith("configuration OK (server s1, 1 peer(s), 2 comm path(s))\n")

    setup.https()
    code, problems, out = setup.check()
    assert (code, problems) == (0, [])
    assert out.endswith(
        "(server s1, 1 peer(s), 2 comm path(s)); "
        "TCP API on 198.18.0.11:7480: HTTPS, admin and viewer tokens\n"
    )


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


def config_writable(s: Setup) -> None:
    s.config.write_text(s.text)
    s.config.chmod(0o666)


def tunables_writable(s: Setup) -> None:
    s.tunables.write_text("NOIPUNIQUE=1\n")
    s.tunables.chmod(0o666)


def tunables_not_roots(s: Setup) -> None:
    s.tunables.write_text("NOIPUNIQUE=1\n")
    os.chown(s.tunables, NOBODY, -1)


def state_dir_open(s: Setup) -> None:
    s.state.mkdir(mode=0o700)
    s.state.chmod(0o777)


def state_dir_not_roots(s: Setup) -> None:
    s.state.mkdir(mode=0o700)
    os.chown(s.state, NOBODY, -1)


def _database(s: Setup) -> None:
    s.state.mkdir(mode=0o700)
    with sqlite3.connect(s.database) as db:
        db.execute("CREATE TABLE t(x)")
    s.database.chmod(0o600)


def database_open(s: Setup) -> None:
    _database(s)
    s.database.chmod(0o666)


def database_symlink(s: Setup) -> None:
    _database(s)
    s.database.rename(s.root / "tmp.db")
    s.database.symlink_to(s.root / "tmp.db")


def token_readable(s: Setup) -> None:
    s.https()
    s.token.chmod(0o644)


def bad_fields(s: Setup) -> None:
    s.text = s.text.replace('name = "s1"', 'nmae = "s1"').replace("port = 7470", "port = 70000")


def token_missing(s: Setup) -> None:
    s.https()
    s.token.unlink()


def plain_on_the_lan(s: Setup) -> None:
    s.listen("token_file")
    s.write_secret(s.token, "a" * 32)


def viewer_token_readable(s: Setup) -> None:
    s.https()
    s.viewer.chmod(0o640)


def viewer_token_is_admin(s: Setup) -> None:
    s.https()
    s.write_secret(s.viewer, "v" * 32 + "\n" + "a" * 32)


def tls_key_readable(s: Setup) -> None:
    s.https()
    s.tls_key.chmod(0o644)


def tls_cert_missing_and_key_short(s: Setup) -> None:
    s.https()
    s.cert.unlink()
    s.write_secret(s.token, "short")


def tls_pair_mismatched(s: Setup) -> None:
    s.https()
    s.tls_key.unlink()
    other = s.root / "other.crt"
    tls.create_self_signed(other, s.tls_key, "other", [], [ipaddress.ip_address("198.18.0.11")])


def tls_cert_expired(s: Setup) -> None:
    s.https()
    s.cert.unlink()
    s.tls_key.unlink()
    expired = datetime.datetime(2020, 1, 2, 3, 4, tzinfo=datetime.UTC)
    tls.create_self_signed(s.cert, s.tls_key, "s1", [], [ipaddress.ip_address("198.18.0.11")])
    s.cert.write_bytes(_expired_certificate(s.tls_key, expired))  # the same key, an old end


def _expired_certificate(key_path: Path, not_after: datetime.datetime) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "s1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - datetime.timedelta(days=1))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


# Files whoever could write could make the daemon run code or drop a safety check: the
# daemon refuses each before it does anything, as --check-config reports it.
HOSTILE: list[tuple[Callable[[Setup], None], list[str]]] = [
    (config_writable, ["config: {config}: mode 0666 lets others change it; chmod go-w"]),
    (tunables_writable, ["server.tunables: {tunables}: mode 0666 lets others change it; chmod go-w"]),
    (tunables_not_roots, ["server.tunables: {tunables}: owned by uid 65534, not by the daemon's user"]),
    (state_dir_open, ["server.state_dir: {state}: mode 0777 lets others in; chmod 700"]),
    (state_dir_not_roots, ["server.state_dir: {state}: owned by uid 65534, not by the daemon's user"]),
    (database_open, ["server.state_dir: {database}: mode 0666 lets others read it; chmod 600"]),
    (database_symlink, ["server.state_dir: {database}: a symbolic link (to {root}/tmp.db); it must be a file"]),
    (token_readable, ["api.token_file: {token}: mode 0644 lets others read it; chmod 600"]),
    (key_readable, ["cluster.key_file: {key}: mode 0644 lets others read it; chmod 600"]),
]  # fmt: skip

CASES: list[tuple[Callable[[Setup], None], list[str]]] = [
    (broken_toml, ["{config}: not valid TOML: Illegal character '\\n' (at line 9, column 11)"]),
    (key_short, ["cluster.key_file: {key}: line 1: the key must be at least 16 bytes (32 hex digits)"]),
    (address_elsewhere, ["peer.0.paths.1.local: 198.18.1.99 (a path to s2) is not an address of this server"]),
    (bad_tunables, [
        "server.tunables: {tunables}: HBEAT_MISSES='many' must be a whole number",
        "server.tunables: {tunables}: HBEAT_INTERVL is not a tunable (see `ipkeeper tunables`)",
    ]),
    (open_state_dir, ["server.state_dir: {state}: mode 0755 lets others in; chmod 700"]),
    *HOSTILE,
    (bad_fields, [
        "{config}: server.name: Field required",
        "{config}: server.nmae: Extra inputs are not permitted",
        "{config}: cluster.port: Input should be less than 65536",
    ]),
    (token_missing, ["api.token_file: {token}: No such file or directory"]),
    (plain_on_the_lan, [
        "{config}: api: Value error, listen 198.18.0.11:7480 is not a loopback address: set "
        "tls_cert and tls_key (ipkeeper cert create), or insecure = true to serve plain HTTP",
    ]),
    (viewer_token_readable, ["api.viewer_token_file: {viewer}: mode 0640 lets others read it; chmod 600"]),
    (viewer_token_is_admin, [
        "api.viewer_token_file: {viewer}: holds 1 token(s) of api.token_file; those grant admin, not viewer",
    ]),
    (tls_key_readable, ["api.tls_key: {tls_key}: mode 0644 lets others read it; chmod 600"]),
    (tls_cert_missing_and_key_short, [
        "api.token_file: {token}: line 1: a token is at least 16 characters, no spaces",
        "api.tls_cert: {cert}: No such file or directory",
    ]),
    (tls_pair_mismatched, ["api.tls_key: {cert} with {tls_key}: [X509: KEY_VALUES_MISMATCH] key values mismatch (..."]),
    (tls_cert_expired, ["api.tls_cert: {cert}: expired on 2020-01-02 03:04 UTC"]),
]  # fmt: skip


@pytest.mark.parametrize(("breakage", "expected"), CASES, ids=[c[0].__name__ for c in CASES])
def test_a_broken_configuration_is_refused_with_one_line_per_problem(
    setup: Setup, breakage: Callable[[Setup], None], expected: list[str]
) -> None:
    breakage(setup)
    code, problems, _ = setup.check()
    names = {k: str(v) for k, v in vars(setup).items() if isinstance(v, Path)}
    assert code == 1
    wanted = [f"ipkeeperd: {line.format(**names)}" for line in expected]
    assert len(problems) == len(wanted), problems
    # A line ending in "(..." ends with where OpenSSL's source said it (a line number).
    seen = [
        p[: len(w) - 3] + "..." if w.endswith("(...") else p
        for p, w in zip(problems, wanted, strict=True)
    ]
    assert seen == wanted


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


def tree(root: Path) -> list[tuple[str, int, int, int, int]]:
    """Every file under `root` with its mode, owner, size and modification time."""
    return sorted(
        (str(p), st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns)
        for p in root.rglob("*")
        for st in [p.lstat()]
    )


@pytest.mark.parametrize(("breakage", "expected"), HOSTILE, ids=[c[0].__name__ for c in HOSTILE])
def test_the_daemon_refuses_hostile_files_before_doing_anything(
    setup: Setup, breakage: Callable[[Setup], None], expected: list[str]
) -> None:
    """Issue 11, item 14: one line naming the file and the reason, exit 2, and nothing
    created or changed (no database, no socket, no comm path: it never joined)."""
    breakage(setup)
    setup.config.write_text(setup.text)
    before = tree(setup.root)
    proc = subprocess.run(
        [sys.executable, "-m", "ipkeeper.lab.nsexec", "ipk-s1", "--",
         sys.executable, "-m", "ipkeeper.daemon", "--config", str(setup.config)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    names = {k: str(v) for k, v in vars(setup).items() if isinstance(v, Path)}
    assert proc.stderr.splitlines() == [f"ipkeeperd: error: {expected[0].format(**names)}"]
    assert proc.returncode == 2
    assert tree(setup.root) == before
