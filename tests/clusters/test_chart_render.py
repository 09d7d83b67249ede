"""The four cluster operations, checked on the manifests the official Qdrant chart renders.

Set ``QDRANT_CHART_DIR`` to the chart's folder (``charts/qdrant`` of a qdrant/qdrant-helm
checkout, chart 1.19.0) to run them; the chart's templates are never copied into this
repository. Helm's Go SDK (``helm-python-sdk``) renders it offline, as an upgrade of the
release Argo CD would install, from the values file the portal committed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from clusters.models import Cluster, StorageExpansion
from clusters.services import storage_expansion_complete
from gitops.repository import GitopsRepository, blobs_read, file_read

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/clients/client1/clusters/main"
RELEASE, NAMESPACE = "qdrant-client1-main", "qdrant-client1"


@pytest.fixture(scope="module")
def chart():
    folder = os.environ.get("QDRANT_CHART_DIR")
    if not folder:
        pytest.skip("QDRANT_CHART_DIR is not set: point it at charts/qdrant of a qdrant-helm checkout")
    if not (Path(folder) / "Chart.yaml").exists():
        pytest.fail(f"QDRANT_CHART_DIR={folder} holds no Chart.yaml")
    helm_chart = pytest.importorskip("helm_python.chart", reason="helm-python-sdk is not installed")
    return helm_chart.Chart.load(folder)


def _statefulset(chart, repository: GitopsRepository) -> dict:
    values = yaml.safe_load(file_read(repository=repository, file_path="clients/client1/main/values.yaml"))
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_upgrade=True)
    return yaml.safe_load(manifests["qdrant/templates/statefulset.yaml"])


def _claim_size(statefulset: dict) -> str:
    [template] = statefulset["spec"]["volumeClaimTemplates"]
    return template["spec"]["resources"]["requests"]["storage"]


def _container(statefulset: dict) -> dict:
    return next(c for c in statefulset["spec"]["template"]["spec"]["containers"] if c["name"] == "qdrant")


def test_the_chart_is_the_one_the_portal_deploys(chart, settings):
    assert chart.version == settings.QDRANT_CHART_VERSION
    assert chart.metadata["appVersion"] == settings.QDRANT_DEFAULT_VERSION


def test_a_storage_request_leaves_the_volume_claim_templates_alone_until_an_operator_is_done(
    chart, git_server, as_user1, cluster1, operator_staff
):
    assert _claim_size(_statefulset(chart, git_server)) == "10Gi"

    as_user1.patch(URL, {"storageGi": 20}, format="json")
    assert _claim_size(_statefulset(chart, git_server)) == "10Gi"

    storage_expansion_complete(expansion=StorageExpansion.objects.get(), actor=operator_staff)
    assert _claim_size(_statefulset(chart, git_server)) == "20Gi"


def test_every_rotation_changes_the_pod_template_and_no_key_is_rendered(
    chart, git_server, as_user1, cluster1
):
    def pod_annotations() -> dict:
        return _statefulset(chart, git_server)["spec"]["template"]["metadata"]["annotations"]

    def env_names() -> set[str]:
        return {entry["name"] for entry in _container(_statefulset(chart, git_server))["env"]}

    created = pod_annotations()
    keys = as_user1.post(f"{URL}/credentials/rotate").json()
    started = pod_annotations()
    assert "QDRANT__SERVICE__ALT_API_KEY" in env_names()
    as_user1.post(f"{URL}/credentials/rotate/finish")
    finished = pod_annotations()
    assert "QDRANT__SERVICE__ALT_API_KEY" not in env_names()
    Cluster.objects.filter(pk=cluster1.pk).update(version="v1.16.3")
    as_user1.post(f"{URL}/credentials/rotate")  # one step
    one_step = pod_annotations()

    assert len({str(a) for a in (created, started, finished, one_step)}) == 4
    assert {a["checksum/config"] for a in (created, started, finished, one_step)} == {
        created["checksum/config"]
    }
    rendered = yaml.safe_dump(_statefulset(chart, git_server))
    assert keys["apiKey"] not in rendered
    for blob in blobs_read(repository=git_server):
        assert keys["apiKey"].encode() not in blob


def test_a_refused_version_change_renders_the_same_image_and_an_upgrade_the_next(
    chart, git_server, as_user1, cluster1
):
    Cluster.objects.filter(pk=cluster1.pk).update(version="v1.18.3")
    as_user1.patch(URL, {"replicas": 3}, format="json")  # commits v1.18.3
    image = _container(_statefulset(chart, git_server))["image"]
    assert image.endswith(":v1.18.3")

    assert as_user1.patch(URL, {"version": "v1.17.1"}, format="json").status_code == 400
    assert _container(_statefulset(chart, git_server))["image"] == image

    assert as_user1.patch(URL, {"version": "v1.19.0"}, format="json").status_code == 200
    assert _container(_statefulset(chart, git_server))["image"].endswith(":v1.19.0")


def test_a_scale_down_reaches_the_statefulset_only_when_confirmed(chart, git_server, as_user1, cluster1):
    assert _statefulset(chart, git_server)["spec"]["replicas"] == 2

    assert as_user1.patch(URL, {"replicas": 1}, format="json").status_code == 409
    assert _statefulset(chart, git_server)["spec"]["replicas"] == 2

    assert as_user1.patch(URL, {"replicas": 1, "confirm": True}, format="json").status_code == 200
    assert _statefulset(chart, git_server)["spec"]["replicas"] == 1
