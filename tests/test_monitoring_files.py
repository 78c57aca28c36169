"""
The Prometheus alert rules and the Grafana dashboard shipped in
etc/monitoring/: the rules pass promtool (Debian's prometheus package),
and every metric either uses is one exmta exposes.
"""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from exmta.metrics.registry import ServerMetrics

FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "etc", "monitoring")
RULES = os.path.join(FOLDER, "exmta-alerts.yml")
DASHBOARD = os.path.join(FOLDER, "exmta-dashboard.json")

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "info": ("_info",),
    "gauge": ("",),
}
_METRIC = re.compile(r"\b((?:exmta|process)_[a-z_]+)\b")


def _exposedNames():
    names = set()
    for family in ServerMetrics("HubA").registry.collect():
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def _used(expressions):
    return {name for expression in expressions for name in _METRIC.findall(expression)}


def test_rulesPassPromtool():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    result = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_rulesUseOnlyExposedMetrics():
    with open(RULES) as handle:
        rules = yaml.safe_load(handle)
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = _used(expressions)
    assert {"exmta_queue_messages", "exmta_queue_oldest_message_age_seconds",
            "exmta_back_pressure_level", "exmta_deliveries_total"} <= used
    assert used <= _exposedNames(), used - _exposedNames()
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"ExmtaQueueGrowing", "ExmtaOldestMessageTooOld", "ExmtaBackPressure",
            "ExmtaDeliveryFailuresRising"} <= names


def test_dashboardUsesOnlyExposedMetrics():
    with open(DASHBOARD) as handle:
        dashboard = json.load(handle)
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = _used(expressions)
    assert used <= _exposedNames(), used - _exposedNames()
    assert len(used) >= 12
    # Imported dashboards ask for their data source.
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    assert all("$instance" in expression for expression in expressions)


def test_everyMetricIsDocumented():
    page = os.path.join(os.path.dirname(FOLDER), "..", "docs", "metrics.rst")
    with open(page) as handle:
        text = handle.read()
    for family in ServerMetrics("HubA").registry.collect():
        if family.name.startswith("exmta_"):
            name = family.name + ("_total" if family.type == "counter" else "")
            name = name.replace("exmta_build", "exmta_build_info")
            assert f"``{name}``" in text, name
