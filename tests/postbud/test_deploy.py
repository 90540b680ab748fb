"""deploy/: the dashboard, alert rules, Prometheus config, image, compose file and systemd unit are valid,
use only metrics that exist, and every metric in the catalogue is on /metrics."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from postbud.daemon import Daemon
from postbud.http import make_app
from core.metrics import Metrics, OpsGauges
from postbud.runtime import Runtime
from postbud.stats import ops_reading
from tests.conftest import MakeConfig

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_BUILTINS = {"up"}
METRIC = re.compile(r"\b(postbud_[a-z0-9_]+|up)\b")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def defined_metrics() -> set[str]:
    """Every metric name core/metrics.py defines (the one module metrics live in)."""
    return set(re.findall(r'"(postbud_[a-z0-9_]+)"', (ROOT / "core" / "metrics.py").read_text()))


def referenced(expr: str) -> set[str]:
    names = set()
    for name in METRIC.findall(expr):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        names.add(base if base in defined_metrics() else name)
    return names


def dashboard_exprs() -> list[str]:
    data = json.loads((DEPLOY / "grafana" / "dashboards" / "postbud.json").read_text())
    return [t["expr"] for panel in data["panels"] for t in panel.get("targets", [])]


def alert_exprs() -> list[str]:
    text = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    return re.findall(r"^\s+expr: (.+)$", text, flags=re.MULTILINE)


def catalogue() -> set[str]:
    return set(re.findall(r"^\| `(postbud_[a-z0-9_]+)` \|", (DEPLOY / "README.md").read_text(), flags=re.MULTILINE))


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


def test_dashboard_parses_and_uses_only_existing_metrics() -> None:
    data = json.loads((DEPLOY / "grafana" / "dashboards" / "postbud.json").read_text())
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids)) and data["uid"] == "postbud"
    exprs = dashboard_exprs()
    used = set().union(*(referenced(e) for e in exprs))
    assert used - defined_metrics() - PROMETHEUS_BUILTINS == set()
    titles = " ".join(p["title"].lower() for p in data["panels"])
    for topic in ("freshness", "queue depth", "queue age", "automation rate", "delivery outcomes", "errors"):
        assert topic in titles, topic


def test_alert_rules_use_only_existing_metrics_and_cover_the_issue() -> None:
    exprs = alert_exprs()
    used = set().union(*(referenced(e) for e in exprs))
    assert used - defined_metrics() - PROMETHEUS_BUILTINS == set()
    names = set(re.findall(r"alert: (\w+)", (DEPLOY / "prometheus" / "alerts.yml").read_text()))
    assert {"PostbudMailboxQuiet", "PostbudMailboxNeedsReauth", "PostbudRecipientKeyExpiring", "PostbudDeadLetters",
            "PostbudOutboxQueueOld", "PostbudPurgeNotRun", "PostbudMailboxCannotStart", "PostbudMailboxPaused",
            "PostbudDeliveryChannelPaused"} <= names


def test_promtool_checks_rules_config_and_rule_unit_tests() -> None:
    tool = promtool()
    for args in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"],
                 ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run([tool, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_catalogue_lists_every_metric() -> None:
    assert catalogue() == defined_metrics()


async def test_every_catalogued_metric_is_on_metrics(make_config: MakeConfig) -> None:
    runtime = await asyncio.to_thread(Runtime.create, make_config(), metrics=Metrics())
    try:
        _with_ops_gauges(runtime)
        transport = httpx.ASGITransport(app=make_app(runtime.metrics, runtime.store, lambda: True))
        async with httpx.AsyncClient(transport=transport, base_url="http://postbud") as client:
            body = (await client.get("/metrics")).text
    finally:
        await runtime.aclose()
    exported = set(re.findall(r"^# TYPE (\S+) ", body, flags=re.MULTILINE))
    assert catalogue() - exported == set()


def _with_ops_gauges(runtime: Runtime) -> None:
    """Register the database-backed ops gauges unless the runtime already does."""
    try:
        runtime.metrics.add_collector(OpsGauges(lambda: ops_reading(runtime.store)))
    except ValueError:  # duplicated timeseries: the runtime wires them itself
        pass


def test_image_runs_as_non_root_on_a_slim_base() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.startswith("# syntax=docker/dockerfile:1")
    froms = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert all("slim" in f for f in froms)
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.MULTILINE):
        assert (ROOT / source).exists(), source


def test_compose_runs_postbud_with_postgres_prometheus_alertmanager_and_grafana() -> None:
    yaml = pytest.importorskip("yaml")
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postbud", "postgres", "prometheus", "alertmanager", "grafana"}
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), source
    assert services["postbud"]["read_only"] is True and services["postbud"]["cap_drop"] == ["ALL"]


def test_prometheus_sends_the_alert_rules_to_the_compose_alertmanager() -> None:
    yaml = pytest.importorskip("yaml")
    prometheus: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    targets = [t for am in prometheus["alerting"]["alertmanagers"] for c in am["static_configs"] for t in c["targets"]]
    assert targets == ["alertmanager:9093"]
    alertmanager = compose["services"]["alertmanager"]
    assert "./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in alertmanager["volumes"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    assert "alertmanager" in compose["services"]["prometheus"]["depends_on"]


def amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        pytest.skip("amtool is not installed (apt-get install prometheus-alertmanager)")
    return path


def test_amtool_checks_the_alertmanager_config_and_routes_every_alert() -> None:
    """Every alert in alerts.yml reaches a receiver: critical and warning ones the operators."""
    tool = amtool()
    config = DEPLOY / "alertmanager" / "alertmanager.yml"
    check = subprocess.run([tool, "check-config", str(config)], capture_output=True, text=True, timeout=60,
                           check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    alerts = re.findall(r"- alert: (\w+)\n(?:.*\n)*?\s+labels: \{severity: (\w+)\}", rules)
    assert len(alerts) == len(re.findall(r"- alert: ", rules))
    for name, severity in alerts:
        routed = subprocess.run([tool, "config", "routes", "test", f"--config.file={config}",
                                 f"alertname={name}", f"severity={severity}"],
                                capture_output=True, text=True, timeout=60, check=False)
        expected = "null" if severity == "info" else "operators"
        assert routed.stdout.strip() == expected, (name, routed.stdout + routed.stderr)


def test_systemd_unit_reloads_by_checking_the_config_then_sighup() -> None:
    unit = (DEPLOY / "systemd" / "postbud.service").read_text()
    reloads = re.findall(r"^ExecReload=(.+)$", unit, flags=re.MULTILINE)
    assert reloads == ["/opt/postbud/bin/postbud config check", "/bin/kill -HUP $MAINPID"]


def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    executable = ROOT / ".venv" / "bin" / "postbud"
    if not executable.exists():
        pytest.skip("no installed postbud executable to point the unit at")
    unit = tmp_path / "postbud.service"
    unit.write_text((DEPLOY / "systemd" / "postbud.service").read_text().replace("/opt/postbud/bin/postbud",
                                                                                   str(executable)))
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert verify.returncode == 0, verify.stderr
    security = subprocess.run([analyze, "security", "--offline=yes", str(unit)], capture_output=True, text=True,
                              timeout=60, check=False)
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert exposure is not None, security.stdout + security.stderr
    assert float(exposure.group(1)) < 3.0


@pytest.mark.slow
async def test_prometheus_scrapes_a_running_postbud(make_config: MakeConfig, tmp_path: Path) -> None:
    """A real Prometheus server scrapes the daemon, loads the alert rules and accepts every dashboard query."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    port, prom_port = free_port(), free_port()
    runtime = await asyncio.to_thread(Runtime.create, make_config(listen=f"127.0.0.1:{port}"))
    _with_ops_gauges(runtime)
    daemon = Daemon(runtime)
    task = asyncio.create_task(daemon.run())
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{DEPLOY / 'prometheus' / 'alerts.yml'}']\n"
        "scrape_configs:\n"
        f"  - job_name: postbud\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    server = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{prom_port}", timeout=5) as client:
            up = await _wait_for(client, "postbud_up", "1")
            assert up, "Prometheus never scraped postbud_up = 1"
            assert await _wait_for(client, 'postbud_stats_messages{figure="collected"}', "0")
            rules = (await client.get("/api/v1/rules")).json()["data"]["groups"]
            assert {g["name"] for g in rules} == {"postbud-collection", "postbud-delivery", "postbud-model",
                                                  "postbud-retention"}
            assert all(r["health"] in ("ok", "unknown") for g in rules for r in g["rules"])
            for expr in dashboard_exprs():
                response = await client.get("/api/v1/query", params={"query": expr})
                assert response.status_code == 200, (expr, response.text)
    finally:
        server.terminate()
        server.communicate(timeout=30)
        daemon.stop()
        await asyncio.wait_for(task, 15)
        await runtime.aclose()


async def _wait_for(client: httpx.AsyncClient, query: str, value: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = (await client.get("/api/v1/query", params={"query": query})).json()["data"]["result"]
        except (httpx.TransportError, KeyError, ValueError):
            result = []
        if any(r["value"][1] == value for r in result):
            return True
        await asyncio.sleep(0.5)
    return False
