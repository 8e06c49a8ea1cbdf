"""Imports point inward: each plane uses only what it may (STYLE.md, "the rule that keeps
the layout honest"). Read with ast, so nothing is imported to check it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "ipkeeper"

# package -> imports its modules must not make (prefixes)
FORBIDDEN = {
    "model": ("ipkeeper.engine", "ipkeeper.kits", "ipkeeper.store", "ipkeeper.cluster", "ipkeeper.api",
              "ipkeeper.cli", "ipkeeper.lab", "ipkeeper.config", "pyroute2", "fastapi", "sqlite3"),
    "engine": ("pyroute2", "fastapi", "starlette", "uvicorn", "sqlite3", "ipkeeper.kits.ip.netlink",
               "ipkeeper.kits.ip.packets", "ipkeeper.api", "ipkeeper.cli", "ipkeeper.cluster",
               "ipkeeper.lab", "ipkeeper.web"),
    "kits": ("ipkeeper.engine", "ipkeeper.api", "ipkeeper.cli", "ipkeeper.cluster", "ipkeeper.store",
             "ipkeeper.lab", "fastapi"),
    "store": ("ipkeeper.engine", "ipkeeper.api", "ipkeeper.cli", "ipkeeper.cluster", "ipkeeper.kits",
              "pyroute2", "fastapi"),
    "api": ("pyroute2", "sqlite3", "ipkeeper.store", "ipkeeper.kits.ip.netlink", "ipkeeper.cli"),
    "cli": ("ipkeeper.engine", "ipkeeper.store", "ipkeeper.kits", "ipkeeper.cluster", "ipkeeper.api",
            "pyroute2", "sqlite3"),
    "cluster": ("pyroute2", "fastapi", "sqlite3", "ipkeeper.api", "ipkeeper.cli", "ipkeeper.lab"),
}  # fmt: skip


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def matches(name: str, prefix: str) -> bool:
    """True when module `name` is `prefix` or inside it."""
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_inward(package: str) -> None:
    bad = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in sorted((SRC / package).rglob("*.py"))
        for name in sorted(imports(path))
        if any(matches(name, prefix) for prefix in FORBIDDEN[package])
    ]
    assert bad == []


def test_only_the_netlink_module_talks_to_pyroute2_in_the_product() -> None:
    users = sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if p.relative_to(SRC).parts[0] not in ("lab", "testing")
        and any(name.split(".")[0] == "pyroute2" for name in imports(p))
    )
    assert users == ["kits/ip/netlink.py"]
