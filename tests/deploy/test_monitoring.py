"""Monitoring manifests: the metrics volume, the optional Prometheus component, the Grafana dashboard.

The ServiceMonitor is a Prometheus Operator custom resource, for which kubernetes-validate has
no schema: its structure is checked here against what the Operator needs and against the
Service and Secret it points at. Everything else is validated against the Kubernetes schemas.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version, major_minor
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from config import metrics
from operations.metrics import GitopsOutboxCollector

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"
K8S_DIR = DEPLOY_DIR / "k8s"
MONITORING_DIR = K8S_DIR / "monitoring"
DASHBOARD = DEPLOY_DIR / "grafana" / "qdrant-portal.json"


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _one(path: Path) -> dict:
    (document,) = _documents(path)
    return document


def _container() -> dict:
    (container,) = _one(K8S_DIR / "deployment.yaml")["spec"]["template"]["spec"]["containers"]
    return container


def test_the_workers_share_their_metrics_through_an_in_memory_emptydir():
    pod = _one(K8S_DIR / "deployment.yaml")["spec"]["template"]["spec"]
    env = {item["name"]: item for item in _container()["env"]}
    directory = env["PROMETHEUS_MULTIPROC_DIR"]["value"]
    mount = next(m for m in _container()["volumeMounts"] if m["mountPath"] == directory)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["emptyDir"]["medium"] == "Memory" and volume["emptyDir"]["sizeLimit"]
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    # Jobs and CronJobs run management commands: they count for themselves, not into the pods' files.
    for name in ("job-migrate.yaml", "cronjob-gitops-sync.yaml", "cronjob-records-prune.yaml"):
        assert "PROMETHEUS_MULTIPROC_DIR" not in (K8S_DIR / name).read_text()


def test_the_monitoring_component_is_optional_and_lists_its_files():
    component = yaml.safe_load((MONITORING_DIR / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    assert sorted(component["resources"]) == sorted(
        path.name for path in MONITORING_DIR.glob("*.yaml") if path.name != "kustomization.yaml"
    )
    base = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert not [resource for resource in base["resources"] if "monitoring" in resource]


@pytest.mark.parametrize("version", sorted({"1.28", major_minor(latest_version())}))
def test_the_prometheus_network_policy_validates_and_opens_only_the_pods_port(version):
    policy = _one(MONITORING_DIR / "networkpolicy.yaml")
    kubernetes_validate.validate(policy, version, strict=True)
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"namespaceSelector", "podSelector"}  # Prometheus's pods, in its namespace only
    assert [port["port"] for port in rule["ports"]] == [_container()["ports"][0]["containerPort"]]


def test_the_service_monitor_scrapes_the_portal_service_with_the_metrics_token():
    monitor = _one(MONITORING_DIR / "servicemonitor.yaml")
    service = _one(K8S_DIR / "service.yaml")
    secret = _one(K8S_DIR / "secret.example.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "ServiceMonitor"
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert spec["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics" and endpoint["scheme"] == "http"
    assert re.fullmatch(r"\d+s", endpoint["interval"]) and re.fullmatch(r"\d+s", endpoint["scrapeTimeout"])
    credentials = endpoint["authorization"]["credentials"]
    assert endpoint["authorization"]["type"] == "Bearer"
    assert credentials["name"] == secret["metadata"]["name"]
    assert credentials["key"] in secret["stringData"]


def _kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.mark.skipif(_kustomize() is None, reason="neither kustomize nor kubectl is installed")
def test_an_overlay_with_the_component_renders_the_base_and_the_scraping(tmp_path):
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S_DIR, overlay)],  # kustomize takes relative paths only
                "components": [os.path.relpath(MONITORING_DIR, overlay)],
            }
        )
    )
    result = subprocess.run(
        [*_kustomize(), str(overlay)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc]
    assert "ServiceMonitor" in kinds and kinds.count("NetworkPolicy") == 2 and "Deployment" in kinds


# --- Grafana ---------------------------------------------------------------------------------------


def _family_names(collector: Collector) -> set[str]:
    families: list[Metric] = list(collector.collect()) if hasattr(collector, "collect") else []
    return {family.name for family in families}


def _exported_names() -> set[str]:
    """Every series name /metrics can carry: the process metrics and the scrape-time ones."""
    names = set()
    for value in vars(metrics).values():
        if hasattr(value, "_name") and hasattr(value, "_type"):
            base = value._name
            names |= {base, f"{base}_total", f"{base}_bucket", f"{base}_count", f"{base}_sum"}
    names |= {
        "portal_gitops_outbox_pending_changes",
        "portal_gitops_outbox_oldest_age_seconds",
        "portal_gitops_last_push_timestamp_seconds",
    }
    return names


def test_the_dashboard_is_grafana_json_whose_queries_use_only_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    exported = _exported_names()
    used = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(re.findall(r"\bportal_[a-z_]+", target["expr"]))
            assert names, target["expr"]
            assert names <= exported, (panel["title"], names - exported)
            used |= names
    # Every kind of figure the portal exports is on the dashboard.
    for needed in (
        "portal_http_requests_total",
        "portal_http_request_duration_seconds_bucket",
        "portal_logins_total",
        "portal_login_throttled_total",
        "portal_refresh_reuse_detected_total",
        "portal_sessions_revoked_total",
        "portal_gitops_commits_total",
        "portal_gitops_pushes_total",
        "portal_gitops_outbox_oldest_age_seconds",
        "portal_cluster_deployments",
    ):
        assert needed in used, needed


def test_the_scrape_time_metrics_named_in_the_dashboard_are_the_collectors(db):
    names = _family_names(GitopsOutboxCollector())
    assert {"portal_gitops_outbox_pending_changes", "portal_gitops_outbox_oldest_age_seconds"} <= names
