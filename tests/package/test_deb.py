"""`make deb`: Debian's tooling builds the package, lintian accepts it, and dpkg installs
it into a throwaway root made of this Debian system, where its commands run."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab  # root: dpkg, mount and network namespaces

REPO = Path(__file__).resolve().parents[2]
THROWAWAY_ROOT = Path(__file__).with_name("throwaway_root.sh")


@pytest.fixture(scope="module")
def built() -> Iterator[tuple[Path, str]]:
    for old in (REPO / "dist").glob("ipkeeper_*.deb"):
        old.unlink()
    proc = subprocess.run(["make", "deb"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (deb,) = (REPO / "dist").glob("ipkeeper_*.deb")
    yield deb, proc.stdout + proc.stderr


def test_make_deb_builds_a_package_that_lintian_accepts(built: tuple[Path, str]) -> None:
    deb, output = built
    assert re.search(r"^lintian --fail-on warning", output, re.M)  # lintian ran, and passed
    assert [line for line in output.splitlines() if re.match(r"[EW]: ipkeeper", line)] == []
    info = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True).stdout
    assert re.search(r"^Depends: .*python3\.\d+", info, re.M)
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True).stdout
    assert "site-packages/fastapi/" in listing
    tools = re.findall(r"site-packages/(_?pytest|ruff|mypy|playwright|hypothesis)[-_/]", listing)
    assert tools == []  # no test tools inside


def read(work: Path, name: str) -> str:
    return (work / name).read_text()


def entries(text: str) -> dict[str, tuple[str, str]]:
    """path -> (mode, type) from the manifest lines `MODE USER:GROUP TYPE PATH`."""
    found = {}
    for line in text.splitlines():
        mode, _owner, kind, path = line.split(" ", 3)
        found[path.removeprefix(".")] = (mode, kind)
    return found


def test_dpkg_installs_it_and_its_commands_run_from_the_installed_paths(
    built: tuple[Path, str], tmp_path: Path
) -> None:
    deb, _ = built
    subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--net", "--",
         str(THROWAWAY_ROOT), str(tmp_path), str(deb)],
        check=True, timeout=300,
    )  # fmt: skip
    assert read(tmp_path, "install.rc").strip() == "0", read(tmp_path, "install.txt")
    assert read(tmp_path, "status.txt").strip() == "install ok installed"
    files = entries(read(tmp_path, "installed.txt"))
    for path, kind in [
        ("/usr/sbin/ipkeeperd", "l"), ("/usr/sbin/ipkeeper", "l"),
        ("/usr/lib/ipkeeper/bin/ipkeeperd", "f"), ("/usr/lib/systemd/system/ipkeeperd.service", "f"),
        ("/usr/share/man/man8/ipkeeperd.8.gz", "f"), ("/usr/share/man/man8/ipkeeper.8.gz", "f"),
        ("/usr/share/bash-completion/completions/ipkeeper", "f"),
        ("/usr/share/bash-completion/completions/ipkeeperd", "f"),
        ("/usr/share/ipkeeper/prometheus/alerts.yml", "f"),
        ("/usr/share/ipkeeper/grafana/ipkeeper.json", "f"),
        ("/usr/share/doc/ipkeeper/copyright", "f"),
    ]:  # fmt: skip
        assert files.get(path, ("", ""))[1] == kind, path
    assert files["/etc/ipkeeper"] == ("700", "d")
    assert files["/etc/ipkeeper/ipkeeper.toml"] == ("600", "f")
    assert files["/etc/default/ipkeeper"] == ("600", "f")
    # Nothing of ipkeeper's own under /etc or /var that others may read.
    ours = [p for p in files if p.startswith(("/etc/", "/var/")) and "ipkeeper" in p]
    assert ours and all(
        int(files[p][0], 8) & 0o007 == 0 for p in ours if not p.startswith("/var/lib/systemd/")
    )
    assert any("/__pycache__/" in p for p in files)  # compiled by postinst
    assert "Usage: ipkeeper [OPTIONS] COMMAND" in read(tmp_path, "help.txt")
    assert read(tmp_path, "help.rc").strip() == "0"
    assert read(tmp_path, "version.txt").strip() == "ipkeeperd 0.1.0"
    assert read(tmp_path, "completion.txt").splitlines() == ["status", "--check-config"]
    assert read(tmp_path, "where.txt").strip() == (
        "/usr/lib/ipkeeper/lib/python3.11/site-packages/ipkeeper/__init__.py"
    )
    # The example, as shipped, in a network namespace with no address: the key is
    # still to be made and the comm paths' addresses are not this server's.
    assert read(tmp_path, "check.rc").strip() == "1"
    assert read(tmp_path, "check.txt").splitlines() == [
        "ipkeeperd: cluster.key_file: /etc/ipkeeper/cluster.key: No such file or directory",
        "ipkeeperd: peer.0.paths.0.local: 198.18.0.11 (a path to s2) is not an address of this server",
        "ipkeeperd: peer.0.paths.1.local: 198.18.1.11 (a path to s2) is not an address of this server",
    ]
    assert (read(tmp_path, "verify.rc").strip(), read(tmp_path, "verify.txt")) == ("0", "")
    # Purged, it leaves no file behind (directories seen on the way are the overlay's).
    assert read(tmp_path, "purge.rc").strip() == "0", read(tmp_path, "purge.txt")
    purged = entries(read(tmp_path, "purged.txt"))
    assert {p: e for p, e in purged.items() if e[1] != "d" or "ipkeeper" in p} == {}
