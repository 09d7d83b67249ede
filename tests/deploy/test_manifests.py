"""The Kubernetes and Argo CD manifests are valid, hardened, consistent with each other and lint-clean."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version, major_minor

from tests.accounts.google_tokens import certificate_pem, private_key
from tests.support.portal_process import signing_key_pem

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = PROJECT_ROOT / "deploy"
K8S_DIR = DEPLOY_DIR / "k8s"
ARGOCD_APPLICATION = DEPLOY_DIR / "argocd" / "portal.yaml"
SECRET_TEMPLATE = "secret.example.yaml"

# The oldest Kubernetes minor the manifests target (CronJob timeZone, matchLabelKeys and
# unhealthyPodEvictionPolicy need it) and the newest one kubernetes-validate ships schemas for.
K8S_VERSIONS = sorted({"1.28", major_minor(latest_version())})

NAMESPACE = "qdrant-portal"
IMAGE_NAME = "qdrant-portal"
POD_UID = 10001
WORKLOAD_KINDS = ("Deployment", "Job", "CronJob")
RBAC_KINDS = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
# Settings that are secrets: only in the Secret, never in the ConfigMap.
SECRET_VARIABLES = {
    "DJANGO_SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "FIELD_ENCRYPTION_KEY",
    "GITOPS_REMOTE_TOKEN",
    "JWT_PRIVATE_KEYS",
    "METRICS_TOKEN",
    "EMAIL_URL",  # its SMTP password
}
# Every setting a production deployment configures (JWT_KEYS_DIR and GITOPS_SSH_KEY_PATH are
# the alternatives not used by these manifests).
DEPLOYMENT_VARIABLES = SECRET_VARIABLES | {
    "DJANGO_DEBUG",
    "PUBLIC_URL",
    "DEFAULT_FROM_EMAIL",
    "DJANGO_ALLOWED_HOSTS",
    "CORS_ALLOWED_ORIGINS",
    "CSRF_TRUSTED_ORIGINS",
    "JWT_ALGORITHM",
    "JWT_ISSUER",
    "JWT_ACCESS_TTL",
    "JWT_REFRESH_TTL",
    "JWT_TTL",
    "JWT_SESSION_MAX",
    "JWT_REFRESH_REUSE_GRACE",
    "GOOGLE_CLIENT_IDS",
    "GOOGLE_ALLOWED_DOMAINS",
    "REPLICAS_MIN",
    "REPLICAS_MAX",
    "QDRANT_VERSIONS",
    "QDRANT_ENDPOINT_TEMPLATE",
    "QDRANT_CHART_VERSION",
    "GITOPS_REPO_PATH",
    "GITOPS_BRANCH",
    "GITOPS_REMOTE_URL",
    "GITOPS_COMMITTER",
    "GITOPS_SEALING_CERT",
    "GUNICORN_WORKERS",
    "GUNICORN_THREADS",
    "LOG_LEVEL",
}
SENSITIVE_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|API_?KEY|DATABASE_URL|REDIS_URL", re.IGNORECASE)


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


MANIFEST_FILES = sorted(path.name for path in K8S_DIR.glob("*.yaml") if path.name != "kustomization.yaml")
MANIFESTS = {name: _documents(K8S_DIR / name) for name in MANIFEST_FILES}
KUSTOMIZATION = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())


def _workloads() -> list[dict]:
    """Every Deployment, Job and CronJob of the base, in file order."""
    return [doc for name in MANIFEST_FILES for doc in MANIFESTS[name] if doc["kind"] in WORKLOAD_KINDS]


def _named(kind: str, name: str) -> dict:
    (found,) = [doc for doc in _workloads() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    return found


def _one(kind: str, *, include_template: bool = False) -> dict:
    found = [
        doc
        for name, docs in MANIFESTS.items()
        if include_template or name != SECRET_TEMPLATE
        for doc in docs
        if doc["kind"] == kind
    ]
    assert len(found) == 1, f"expected exactly one {kind}, found {len(found)}"
    return found[0]


def _pod_spec(workload: dict) -> dict:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def _pod_labels(workload: dict) -> dict:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    return workload["spec"]["template"]["metadata"]["labels"]


def _mounts(container: dict) -> dict[str, str]:
    return {mount["mountPath"]: mount["name"] for mount in container.get("volumeMounts", [])}


def _dockerfile_user() -> str:
    users = re.findall(r"^USER\s+(\S+)", (DEPLOY_DIR / "Dockerfile").read_text(), re.MULTILINE)
    return users[-1]


# --- Schemas and lint ---------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("file_name", MANIFEST_FILES)
def test_every_manifest_validates_against_the_kubernetes_schemas(file_name, version):
    docs = MANIFESTS[file_name]
    assert docs, f"{file_name} holds no document"
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            pytest.fail(
                f"{file_name}: {doc['kind']} invalid for Kubernetes {version} at {path}: {error.message}"
            )


def test_yamllint_passes_over_deploy_with_the_repository_config():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "yamllint",
            "--strict",
            "-c",
            ".yamllint",
            "-f",
            "parsable",
            "deploy/",
            ".yamllint",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.mark.skipif(_kustomize_command() is None, reason="neither kustomize nor kubectl is installed")
def test_the_kustomization_renders_into_valid_manifests_with_the_image_set():
    result = subprocess.run(
        [*_kustomize_command(), str(K8S_DIR)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert {doc["kind"] for doc in rendered} >= {"Namespace", "Deployment", "Service", "Ingress"}
    assert "Secret" not in {doc["kind"] for doc in rendered}
    new_image = next(image for image in KUSTOMIZATION["images"] if image["name"] == IMAGE_NAME)
    for doc in rendered:
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE
        if doc["kind"] in WORKLOAD_KINDS:
            for container in _pod_spec(doc)["containers"]:
                assert container["image"] == f"{IMAGE_NAME}:{new_image['newTag']}"


@pytest.mark.skipif(_kustomize_command() is None, reason="neither kustomize nor kubectl is installed")
def test_an_overlay_written_as_the_base_shows_puts_its_registrys_image_in_every_workload(tmp_path):
    """The README's step: an overlay names `qdrant-portal` and sets the registry. Had the base
    renamed the image, the overlay's entry would match nothing and the base's would deploy."""
    shutil.copytree(K8S_DIR, tmp_path / "k8s")
    overlay = tmp_path / "overlays" / "prod"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(
        "resources: [../../k8s]\n"
        "images:\n"
        "  - {name: qdrant-portal, newName: registry.example.com/qdrant-portal, newTag: '1.0.1'}\n"
    )
    result = subprocess.run(
        [*_kustomize_command(), str(overlay)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    images = {
        container["image"]
        for doc in yaml.safe_load_all(result.stdout)
        if doc and doc["kind"] in WORKLOAD_KINDS
        for container in _pod_spec(doc)["containers"]
    }
    assert images == {"registry.example.com/qdrant-portal:1.0.1"}


# --- Kustomization --------------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_but_the_secret_template():
    resources = KUSTOMIZATION["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == set(MANIFEST_FILES) - {SECRET_TEMPLATE}
    # Argo CD syncs with prune and self-heal: a listed template would overwrite the real Secret.
    assert SECRET_TEMPLATE not in resources


def test_the_kustomization_sets_the_namespace_and_the_image_of_every_container():
    assert KUSTOMIZATION["namespace"] == NAMESPACE
    image_names = {image["name"] for image in KUSTOMIZATION["images"]}
    for workload in _workloads():
        for container in _pod_spec(workload)["containers"]:
            assert container["image"] in image_names, (
                f"{workload['metadata']['name']}: an overlay could not set it"
            )
    for label in KUSTOMIZATION.get("labels", []):
        assert label.get("includeSelectors") is False, "selectors are immutable: never add labels to them"


def test_every_namespaced_manifest_names_the_portal_namespace():
    assert _one("Namespace")["metadata"]["name"] == NAMESPACE
    for name, docs in MANIFESTS.items():
        for doc in docs:
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") == NAMESPACE, name


def test_no_manifest_grants_kubernetes_api_rights():
    kinds = {doc["kind"] for docs in MANIFESTS.values() for doc in docs}
    assert not kinds & RBAC_KINDS
    assert _one("ServiceAccount")["automountServiceAccountToken"] is False


# --- Workloads ------------------------------------------------------------------------------


def test_the_deployment_runs_two_replicas_with_health_probes():
    deployment = _one("Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (container,) = _pod_spec(deployment)["containers"]
    port_names = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert port_names == {"http": 8000}
    expected_paths = {"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/healthz"}
    for probe_name, path in expected_paths.items():
        probe = container[probe_name]["httpGet"]
        assert probe["path"] == path, probe_name
        assert probe["port"] in {"http", 8000}, probe_name
        host_headers = [
            header["value"] for header in probe.get("httpHeaders", []) if header["name"] == "Host"
        ]
        allowed_hosts = _one("ConfigMap")["data"]["DJANGO_ALLOWED_HOSTS"].split(",")
        assert all(host in allowed_hosts for host in host_headers), "a probe's Host must be allowed"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30, "give a cold start time"


def test_the_deployment_spreads_its_pods_and_keeps_one_through_disruptions():
    deployment = _one("Deployment")
    labels = _pod_labels(deployment)
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    constraints = _pod_spec(deployment)["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in constraints} >= {"kubernetes.io/hostname"}
    for constraint in constraints:
        assert constraint["labelSelector"]["matchLabels"].items() <= labels.items()
    pdb = _one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]


@pytest.mark.parametrize("workload", _workloads(), ids=lambda workload: workload["metadata"]["name"])
def test_every_pod_is_hardened(workload):
    """Non-root with the image's UID, read-only root, no capabilities, RuntimeDefault seccomp."""
    kind = workload["metadata"]["name"]
    pod = _pod_spec(workload)
    assert (
        f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" == _dockerfile_user()
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == POD_UID
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == _one("ServiceAccount")["metadata"]["name"]
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context.get("privileged", False) is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "add" not in context["capabilities"]
        for section in ("requests", "limits"):
            assert set(container["resources"][section]) >= {"cpu", "memory"}, f"{kind}: {section}"
        mounts = _mounts(container)
        assert set(mounts.values()) <= set(volumes), f"{kind}: a mount without a volume"
        assert "emptyDir" in volumes[mounts["/tmp"]]
        assert "emptyDir" in volumes[mounts["/var/lib/portal"]]
        assert [
            source.get("configMapRef", source.get("secretRef"))["name"] for source in container["envFrom"]
        ] == [
            _one("ConfigMap")["metadata"]["name"],
            _one("Secret", include_template=True)["metadata"]["name"],
        ]


def test_the_git_clone_and_the_sealing_certificate_are_where_the_pod_mounts_them():
    data = _one("ConfigMap")["data"]
    for workload in (_one("Deployment"), _named("CronJob", "portal-gitops-sync")):
        pod = _pod_spec(workload)
        (container,) = pod["containers"]
        mounts = _mounts(container)
        for variable in ("GITOPS_REPO_PATH", "PORTAL_VAR_DIR"):
            path = PurePosixPath(data[variable])
            assert (
                path == PurePosixPath("/var/lib/portal") or PurePosixPath("/var/lib/portal") in path.parents
            )
        cert = PurePosixPath(data["GITOPS_SEALING_CERT"])
        volume = next(v for v in pod["volumes"] if v["name"] == mounts[str(cert.parent)])
        assert {"key": "cert.pem", "path": cert.name} in volume["configMap"]["items"]


def test_every_pod_mounts_argo_cds_ca_where_the_configmap_says_it_goes():
    """Every pod loads the settings, which refuse an ARGOCD_CA_FILE that is not there: the
    migration and the CronJobs too, not just the web pods that ask Argo CD."""
    configmap_text = (K8S_DIR / "configmap.yaml").read_text()
    ca_file = PurePosixPath("/etc/portal/argocd/ca.crt")
    assert f"{ca_file}, from the ConfigMap every pod mounts" in configmap_text
    assert "create configmap portal-argocd-ca --from-file=ca.crt=" in configmap_text
    for workload in _workloads():
        pod = _pod_spec(workload)
        (container,) = pod["containers"]
        volume = next(v for v in pod["volumes"] if v["name"] == _mounts(container)[str(ca_file.parent)])
        # Optional: without Argo CD, or with a public certificate, no such ConfigMap exists.
        assert volume["configMap"] == {"name": "portal-argocd-ca", "optional": True}, workload["metadata"]


def test_the_ingress_waits_for_the_workloads_under_argo_cd():
    """An Ingress whose controller publishes no address stays "Progressing": after the
    workloads, it cannot hold back the migration and the pods."""
    ingress_wave = int(_one("Ingress")["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
    for workload in _workloads():
        assert int(workload["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) < ingress_wave


def test_the_migration_job_runs_before_the_new_pods_under_argo_cd():
    job = _one("Job")
    (container,) = _pod_spec(job)["containers"]
    assert container["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert _pod_spec(job)["restartPolicy"] == "Never"
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "Sync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    job_wave = int(annotations["argocd.argoproj.io/sync-wave"])
    for workload in _workloads():
        if workload["kind"] != "Job":
            assert int(workload["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) > job_wave


def test_the_gitops_sync_cronjob_never_overlaps_itself():
    cronjob = _named("CronJob", "portal-gitops-sync")
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    (container,) = _pod_spec(cronjob)["containers"]
    assert container["command"] == ["python", "manage.py", "gitops_sync"]
    every_minutes = re.fullmatch(r"\*/(\d+) \* \* \* \*", spec["schedule"])
    assert every_minutes, "expected a run every few minutes"
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] < int(every_minutes.group(1)) * 60


def test_the_records_prune_cronjob_runs_once_a_day_and_never_overlaps_itself():
    cronjob = _named("CronJob", "portal-records-prune")
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    (container,) = _pod_spec(cronjob)["containers"]
    assert container["command"] == ["python", "manage.py", "records_prune"]
    assert re.fullmatch(r"\d+ \d+ \* \* \*", spec["schedule"]), "expected once a day"
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] < 24 * 3600


def test_the_service_and_ingress_route_to_the_web_pods_over_tls():
    deployment = _one("Deployment")
    service = _one("Service")
    assert service["spec"]["selector"].items() <= _pod_labels(deployment).items()
    (container,) = _pod_spec(deployment)["containers"]
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    ingress = _one("Ingress")
    rule_hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    tls_hosts = {host for tls in ingress["spec"]["tls"] for host in tls["hosts"]}
    assert rule_hosts == tls_hosts, "every host is served over TLS"
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"]["name"] == port["name"]
    allowed_hosts = _one("ConfigMap")["data"]["DJANGO_ALLOWED_HOSTS"].split(",")
    assert rule_hosts <= set(allowed_hosts)


def test_only_the_ingress_controller_may_reach_the_web_pods():
    """Behind TRUSTED_PROXY_HOPS=1 a client reaching a pod directly could forge X-Forwarded-For."""
    policy = _one("NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= _pod_labels(_one("Deployment")).items()
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"namespaceSelector"}  # no pod of the namespace itself, nobody else
    # One namespace, by the name Kubernetes sets on it: an empty selector would admit them all.
    assert source["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    (container,) = _pod_spec(_one("Deployment"))["containers"]
    assert [p["port"] for p in rule["ports"]] == [container["ports"][0]["containerPort"]]
    assert _one("ConfigMap")["data"]["TRUSTED_PROXY_HOPS"] == "1"


# --- Configuration and the Secret template ---------------------------------------------------


def test_the_configmap_holds_no_secret_and_turns_debug_off():
    data = _one("ConfigMap")["data"]
    assert not set(data) & SECRET_VARIABLES
    assert not [key for key in data if SENSITIVE_NAME.search(key)]
    assert data["DJANGO_DEBUG"].lower() in {"0", "false", "no", "off"}


def test_the_configmap_and_the_secret_template_cover_every_deployment_setting():
    configured = set(_one("ConfigMap")["data"]) | set(_one("Secret", include_template=True)["stringData"])
    assert DEPLOYMENT_VARIABLES - configured == set()


def test_the_configmap_deploys_the_chart_and_versions_the_portal_was_tested_with(settings):
    """A stale ConfigMap would quietly pin production to an old chart whose values differ."""
    data = _one("ConfigMap")["data"]
    assert data["QDRANT_CHART_VERSION"] == settings.QDRANT_CHART_VERSION
    assert data["QDRANT_VERSIONS"].split(",") == settings.QDRANT_VERSIONS


def test_the_secret_template_holds_placeholders_only():
    text = (K8S_DIR / SECRET_TEMPLATE).read_text()
    assert "TEMPLATE" in text.split("apiVersion")[0], "the file must say it is a template"
    secret = _one("Secret", include_template=True)
    assert "data" not in secret, "base64 data would hide what the values are"
    values = secret["stringData"]
    assert set(values) == SECRET_VARIABLES
    for key, value in values.items():
        assert "CHANGE-ME" in value, f"{key} is not an obvious placeholder"
        assert "-----BEGIN" not in value, f"{key} holds a PEM block"
        assert not re.search(r"eyJ[A-Za-z0-9_-]+\.", value), f"{key} holds a JWT"
        # Anything long and random-looking is a real secret, not a placeholder.
        assert not re.search(r"[A-Za-z0-9+/_=]{24,}", value.replace("CHANGE-ME", "")), key


def test_check_deploy_passes_with_the_configmap_and_secret_values(tmp_path):
    """`manage.py check --deploy` with the manifests' settings and real-looking secret values."""
    if not (PROJECT_ROOT / "config" / "settings.py").exists():
        pytest.skip("config/settings.py is not written yet")
    env = {key: value for key, value in os.environ.items() if key in {"PATH", "LANG", "LC_ALL", "SYSTEMROOT"}}
    env.update(_one("ConfigMap")["data"])
    # The controller's certificate, mounted at the ConfigMap's path in a pod.
    sealing = tmp_path / "sealing.pem"
    sealing.write_text(certificate_pem(private_key()))
    env.update(_one("Secret", include_template=True)["stringData"])
    # What an operator puts in the Secret (the placeholders are deliberately too weak to pass).
    env.update(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        FIELD_ENCRYPTION_KEY=secrets.token_urlsafe(32),
        JWT_PRIVATE_KEYS=signing_key_pem(),  # without one every request fails: accounts.E001
        # The pod's volumes, here on the test machine.
        PORTAL_VAR_DIR=str(tmp_path),
        GITOPS_REPO_PATH=str(tmp_path / "gitops.git"),
        HOME=str(tmp_path),
        GITOPS_SEALING_CERT=str(sealing),
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- Argo CD --------------------------------------------------------------------------------


def test_the_argocd_application_deploys_deploy_k8s_with_automated_sync():
    # No schema ships for the Application CRD: check the structure Argo CD needs.
    (application,) = _documents(ARGOCD_APPLICATION)
    assert application["apiVersion"] == "argoproj.io/v1alpha1"
    assert application["kind"] == "Application"
    assert application["metadata"]["name"]
    assert application["metadata"]["namespace"] == "argocd"
    spec = application["spec"]
    assert spec["project"]
    source = spec["source"]
    assert re.fullmatch(r"(https://|ssh://|git@)\S+", source["repoURL"])
    assert source["targetRevision"]
    assert source["path"] == "deploy/k8s"
    assert (PROJECT_ROOT / source["path"] / "kustomization.yaml").is_file()
    # The overlay's `images` entry sets the registry and tag: one here would override it.
    assert "images" not in source.get("kustomize", {})
    assert spec["destination"]["namespace"] == NAMESPACE
    assert spec["destination"].get("server") or spec["destination"].get("name")
    automated = spec["syncPolicy"]["automated"]
    assert automated["prune"] is True
    assert automated["selfHeal"] is True
    assert "CreateNamespace=true" not in spec["syncPolicy"].get("syncOptions", [])
    known_spec_keys = {
        "project",
        "source",
        "sources",
        "destination",
        "syncPolicy",
        "ignoreDifferences",
        "info",
    }
    assert set(spec) - {"revisionHistoryLimit"} <= known_spec_keys


def test_the_ingress_and_the_gateway_wait_longer_than_a_write_to_a_hanging_git_remote():
    """Such a write keeps the change and answers 202 once the remote's timeouts run out (a
    fetch, then a push's two exchanges): a proxy that gave up first would answer 504 for it."""
    import pygit2

    import gitops.remote  # noqa: F401  (sets libgit2's timeouts)

    worst_seconds = (pygit2.settings.server_connect_timeout + 3 * pygit2.settings.server_timeout) / 1000
    ingress = _one("Ingress")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"]
    gateway = re.search(
        r"location / \{[^}]*proxy_read_timeout (\d+)s;", (DEPLOY_DIR / "gateway" / "nginx.conf").read_text()
    )
    assert gateway is not None, "the gateway's portal location sets no proxy_read_timeout"
    assert int(ingress) > worst_seconds and int(gateway.group(1)) > worst_seconds


def test_the_overlay_example_replaces_every_example_value_of_the_configmap():
    """Copied as shown, it leaves no example.com host: emailed links, sender, endpoints and the
    GitOps remote all name the operator's own."""
    import re

    example = (K8S_DIR / "kustomization.yaml").read_text()
    patched = set(re.findall(r"path: /data/([A-Z_]+)", example))
    data = yaml.safe_load((K8S_DIR / "configmap.yaml").read_text())["data"]
    placeholders = {name for name, value in data.items() if "example.com" in str(value)}
    assert placeholders and placeholders <= patched, placeholders - patched
