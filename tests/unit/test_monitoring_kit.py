"""The monitoring kit: alert rules pass promtool's own tests, and the rules and the
Grafana dashboard name only metrics a daemon exports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ipkeeper.config.daemon import DaemonConfig
from ipkeeper.daemon import build_engine

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMTOOL = Path(sys.executable).parent / "promtool"
# Words of PromQL that look like names: functions, keywords, and Prometheus' own `up`.
PROMQL = {"up", "vector", "rate", "increase", "max", "sum", "count", "and", "or",
          "histogram_quantile"}  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every metric name a daemon's /metrics can hold (histograms with their suffixes)."""
    state = tmp_path_factory.mktemp("state")
    config = DaemonConfig.model_validate(
        {"server": {"name": "s1", "state_dir": str(state), "tunables": str(state / "t")}}
    )
    engine = build_engine(config)
    try:
        engine.metrics.watch(engine)
        text = engine.metrics.render().decode()
    finally:
        engine.repo.db.close()
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def names_in(expr: str) -> set[str]:
    """Metric names an expression uses (labels, strings and ranges taken out first)."""
    bare = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]|\b(by|on|without|ignoring)\s*\([^)]*\)', " ", expr)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare))
    return {w for w in words if w not in PROMQL and not w.startswith("$")}


def rule_exprs() -> list[str]:
    """The `expr` of every rule in alerts.yml (one line, or a folded block)."""
    lines = (DEPLOY / "prometheus" / "alerts.yml").read_text().splitlines()
    exprs = []
    for i, line in enumerate(lines):
        key, _, rest = line.strip().partition(":")
        if key != "expr":
            continue
        if rest.strip() != ">":
            exprs.append(rest.strip())
            continue
        indent = len(line) - len(line.lstrip())
        block = []
        for follow in lines[i + 1 :]:
            if follow.strip() and len(follow) - len(follow.lstrip()) <= indent:
                break
            block.append(follow.strip())
        exprs.append(" ".join(block))
    return exprs


def test_the_alert_rules_pass_their_promtool_tests() -> None:
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts-test.yml"]):
        done = subprocess.run(
            [str(PROMTOOL), *args],
            cwd=DEPLOY / "prometheus",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    tested = set(
        re.findall(r"alertname: (\w+)", (DEPLOY / "prometheus/alerts-test.yml").read_text())
    )
    defined = set(re.findall(r"- alert: (\w+)", (DEPLOY / "prometheus/alerts.yml").read_text()))
    assert len(defined) == 10 and tested == defined  # a test case for every alert


def test_the_alert_rules_name_only_exported_metrics(exported: set[str]) -> None:
    used = set().union(*(names_in(e) for e in rule_exprs()))
    assert {"ipkeeper_instance_state", "ipkeeper_quorum", "ipkeeper_comm_path_up"} <= used
    assert used - exported == set()


def test_the_dashboard_parses_and_names_only_exported_metrics(exported: set[str]) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "ipkeeper.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    for variable in dashboard["templating"]["list"]:  # label_values(METRIC, label)
        exprs += re.findall(r"label_values\((\w+),", variable.get("definition", ""))
    used = set().union(*(names_in(e) for e in exprs))
    assert len(dashboard["panels"]) >= 10 and len(used) >= 15
    assert used - exported == set()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
