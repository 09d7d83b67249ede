from __future__ import annotations

import fnmatch
import functools
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from gitops.argocd import (
    applicationset_render,
    appproject_render,
    repository_readme_render,
    storage_runbook_render,
)

REPO = "https://git.example.com/platform/qdrant-clusters.git"


def _appset() -> dict:
    return yaml.safe_load(
        applicationset_render(repo_url=REPO, branch="main", chart_version="1.15.5", project="qdrant-clusters")
    )


@pytest.mark.parametrize(
    ("push_url", "shown"),
    [
        ("https://x-access-token:ghp_S3CRET@git.example.com/platform/qdrant-clusters.git", REPO),
        ("HTTPS://ghp_S3CRET@git.example.com/platform/qdrant-clusters.git", REPO),
        ("ssh://git@git.example.com/platform/qdrant-clusters.git", None),  # the user is no secret
        ("git@git.example.com:platform/qdrant-clusters.git", None),
    ],
)
def test_credentials_in_the_remote_url_never_reach_the_manifest(push_url, shown):
    rendered = applicationset_render(repo_url=push_url, branch="main", chart_version="1.15.5", project="p")
    assert b"S3CRET" not in rendered
    urls = {source["repoURL"] for source in yaml.safe_load(rendered)["spec"]["template"]["spec"]["sources"]}
    assert urls - {"https://qdrant.github.io/qdrant-helm"} == {shown or push_url}


def _fill(template: str, client: str, cluster: str) -> str:
    """Evaluate the two Go template forms the ApplicationSet uses, as Argo CD would."""
    segments = ["clients", client, cluster]
    template = re.sub(r"\{\{ index \.path\.segments (\d) \}\}", lambda m: segments[int(m.group(1))], template)
    return template.replace("{{ .path.path }}", "/".join(segments))


def test_applicationset_generates_one_application_per_cluster_folder():
    appset = _appset()

    assert appset["apiVersion"] == "argoproj.io/v1alpha1"
    assert appset["kind"] == "ApplicationSet"
    assert appset["spec"]["generators"] == [
        {"git": {"repoURL": REPO, "revision": "main", "directories": [{"path": "clients/*/*"}]}}
    ]
    assert appset["spec"]["goTemplate"] is True
    assert appset["spec"]["syncPolicy"]["preserveResourcesOnDeletion"] is True


def test_applications_take_names_namespace_and_files_from_the_folder_path():
    template = _appset()["spec"]["template"]
    spec = template["spec"]
    chart, values, secret = spec["sources"]

    assert _fill(template["metadata"]["name"], "acme", "prod") == "qdrant.acme.prod"
    assert _fill(spec["destination"]["namespace"], "acme", "prod") == "qdrant-acme"
    assert spec["project"] == "qdrant-clusters"
    assert chart["repoURL"] == "https://qdrant.github.io/qdrant-helm"
    assert chart["chart"] == "qdrant"
    assert chart["targetRevision"] == "1.15.5"
    assert _fill(chart["helm"]["releaseName"], "acme", "prod") == "qdrant-acme-prod"
    assert [_fill(f, "acme", "prod") for f in chart["helm"]["valueFiles"]] == [
        "$values/clients/acme/prod/values.yaml"
    ]
    assert values == {"repoURL": REPO, "targetRevision": "main", "ref": "values"}
    assert _fill(secret["path"], "acme", "prod") == "clients/acme/prod"
    assert secret["directory"] == {"include": "apikey.sealed.yaml"}
    assert secret["repoURL"] == REPO
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]


def test_application_names_of_different_clusters_never_collide():
    name = _appset()["spec"]["template"]["metadata"]["name"]

    assert _fill(name, "a-b", "c") != _fill(name, "a", "b-c")


def test_readme_explains_how_to_create_the_secret_without_a_sealing_certificate():
    readme = repository_readme_render().decode()

    assert "kubectl create secret generic qdrant-<client>-<cluster>-apikey" in readme
    assert "--from-literal=api-key=" in readme
    assert "--from-literal=read-only-api-key=" in readme
    assert "-n qdrant-<client>" in readme
    assert "clients/<client>/<cluster>/values.yaml" in readme


def test_applications_ignore_volume_claim_templates_of_a_live_statefulset_when_they_sync():
    spec = _appset()["spec"]["template"]["spec"]
    assert spec["ignoreDifferences"] == [
        {"group": "apps", "kind": "StatefulSet", "jsonPointers": ["/spec/volumeClaimTemplates"]}
    ]
    assert "RespectIgnoreDifferences=true" in spec["syncPolicy"]["syncOptions"]


def test_readme_carries_the_storage_runbook_in_the_order_that_works():
    readme = repository_readme_render().decode()
    patch_pvc = readme.index(
        """kubectl -n qdrant-<client> patch "$claim" -p '{"spec":{"resources":{"requests":{"storage":"<size>Gi"}}}}'"""
    )
    mark_done = readme.index('"Mark storage expansion done"')
    orphan = readme.index(
        "kubectl -n qdrant-<client> delete statefulset qdrant-<client>-<cluster> --cascade=orphan"
    )
    assert patch_pvc < mark_done < orphan
    assert "allowVolumeExpansion" in readme


def test_readme_explains_key_rotation_and_the_alternate_key():
    readme = repository_readme_render().decode()
    assert "QDRANT__SERVICE__ALT_API_KEY" in readme and "alt-api-key" in readme
    assert "portal.qdrant.tech/api-keys-fingerprint" in readme
    assert "v1.17.0" in readme and "KEY_ROTATION_GRACE" in readme
    assert "rollout restart statefulset qdrant-<client>-<cluster>" in readme


def test_the_storage_runbook_names_the_real_objects():
    commands = storage_runbook_render(
        namespace="qdrant-acme", statefulset="qdrant-acme-prod", application="qdrant.acme.prod", size="20Gi"
    )
    assert (
        "kubectl -n qdrant-acme get pvc -o name | grep -E '/qdrant-storage-qdrant-acme-prod-[0-9]+$'"
        in commands
    )
    assert "kubectl -n qdrant-acme delete statefulset qdrant-acme-prod --cascade=orphan" in commands


def test_the_storage_runbook_grows_every_volume_of_the_cluster_and_no_other(tmp_path):
    """Step 1 run by bash against a kubectl that lists the namespace's claims: the one left by a
    scale-down from 3 to 2 grows too (a scale-up re-attaches it), another cluster's does not."""
    commands = storage_runbook_render(
        namespace="qdrant-acme", statefulset="qdrant-acme-prod", application="qdrant.acme.prod", size="20Gi"
    )
    step_one = commands.split("kubectl -n qdrant-acme get pvc    #")[0]
    kubectl = tmp_path / "kubectl"
    claims = (
        " ".join(f"qdrant-storage-qdrant-acme-prod-{i}" for i in range(3))
        + " qdrant-storage-qdrant-acme-prod-db-0"
    )
    kubectl.write_text(
        "#!/bin/sh\n"
        f'if [ "$3" = get ]; then printf "persistentvolumeclaim/%s\\n" {claims};\n'
        f'else printf "%s\\n" "$*" >> {tmp_path / "patched"}; fi\n'
    )
    kubectl.chmod(0o755)

    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", step_one], check=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin"}
    )

    patch = '{"spec":{"resources":{"requests":{"storage":"20Gi"}}}}'
    assert (tmp_path / "patched").read_text().splitlines() == [
        f"-n qdrant-acme patch persistentvolumeclaim/qdrant-storage-qdrant-acme-prod-{i} -p {patch}"
        for i in range(3)
    ]


# --- Argo CD's own schemas: the manifests validate, unknown fields refused ----------------------

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "argocd"
DEPLOY_ARGOCD = Path(__file__).resolve().parents[2] / "deploy" / "argocd"
_CRDS = {"Application": "application", "ApplicationSet": "applicationset", "AppProject": "appproject"}


def _refusing_unknown_fields(schema: object) -> object:
    """The schema with ``additionalProperties: false`` wherever it lists properties and allows no others.

    The API server prunes unknown fields of a structural schema instead of refusing them, and
    jsonschema lets them through: both would hide a misspelt key, so refuse them here. Schemas
    that keep unknown fields (``x-kubernetes-preserve-unknown-fields``) or say what extras may
    be (``additionalProperties``) stay as they are.
    """
    if isinstance(schema, list):
        return [_refusing_unknown_fields(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = dict(schema)
    if isinstance(strict.get("properties"), dict):
        strict["properties"] = {
            name: _refusing_unknown_fields(sub) for name, sub in strict["properties"].items()
        }
        if "additionalProperties" not in strict and not strict.get("x-kubernetes-preserve-unknown-fields"):
            strict["additionalProperties"] = False
    for keyword in ("items", "additionalProperties", "not"):
        if isinstance(strict.get(keyword), dict):
            strict[keyword] = _refusing_unknown_fields(strict[keyword])
    for keyword in ("allOf", "anyOf", "oneOf"):
        if keyword in strict:
            strict[keyword] = _refusing_unknown_fields(strict[keyword])
    return strict


@functools.cache
def _validator(kind: str) -> jsonschema.Draft7Validator:
    path = REFERENCE / f"{_CRDS[kind]}-crd.yaml"
    if not path.exists():
        pytest.skip(f"{path} is absent: Argo CD's CRDs come with ../shared/reference")
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return jsonschema.Draft7Validator(_refusing_unknown_fields(version["schema"]["openAPIV3Schema"]))


def _problems(manifest: dict) -> list[str]:
    errors = _validator(manifest["kind"]).iter_errors(manifest)
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in errors]


def test_the_applicationset_validates_against_argo_cds_schema():
    assert _problems(_appset()) == []


@pytest.mark.parametrize("path", sorted(DEPLOY_ARGOCD.glob("*.yaml")), ids=lambda path: path.name)
def test_every_argo_cd_manifest_in_deploy_validates_against_argo_cds_schema(path):
    manifests = [m for m in yaml.safe_load_all(path.read_text()) if m]
    assert manifests and all(m["kind"] in _CRDS for m in manifests)
    for manifest in manifests:
        assert _problems(manifest) == [], path.name


@pytest.mark.parametrize(
    ("where", "key"),
    [
        (("spec",), "goTemplates"),
        (("spec", "template", "spec"), "ignoreDifference"),
        (("spec", "template", "spec", "syncPolicy", "automated"), "selfheal"),
        (("spec", "generators", 0, "git"), "directory"),
    ],
)
def test_a_misspelt_field_is_refused(where, key):
    manifest = _appset()
    node = manifest
    for step in where:
        node = node[step]
    node[key] = True
    assert any("Additional properties are not allowed" in problem for problem in _problems(manifest))


def _project(namespace: str = "argocd") -> dict:
    return yaml.safe_load(appproject_render(repo_url=REPO, project="qdrant-clusters", namespace=namespace))


@pytest.mark.parametrize("namespace", ["argocd", "qdrant-apps"])
def test_the_appproject_validates_against_argo_cds_schema(namespace):
    assert _problems(_project(namespace)) == []


def test_the_appproject_admits_what_every_generated_application_deploys():
    project, template = _project(), _appset()["spec"]["template"]["spec"]
    assert template["project"] == project["metadata"]["name"]
    assert {source["repoURL"] for source in template["sources"]} <= set(project["spec"]["sourceRepos"])
    destinations = project["spec"]["destinations"]
    assert {destination["server"] for destination in destinations} == {template["destination"]["server"]}
    assert _admitted("qdrant-client1", destinations)  # qdrant-<client>
    # CreateNamespace=true: without the Namespace kind every first sync fails.
    assert "CreateNamespace=true" in template["syncPolicy"]["syncOptions"]
    assert {"group": "", "kind": "Namespace"} in project["spec"]["clusterResourceWhitelist"]
    assert "namespaceResourceWhitelist" not in project["spec"]  # the chart's kinds and the SealedSecret
    assert "sourceNamespaces" not in project["spec"]


def _glob_match(pattern: str, value: str) -> bool:
    if pattern.startswith("!"):  # Argo CD's negation: matches whatever the rest does not
        return not _glob_match(pattern[1:], value)
    return fnmatch.fnmatchcase(value, pattern)


def _admitted(
    namespace: str, destinations: list[dict], server: str = "https://kubernetes.default.svc"
) -> bool:
    """Argo CD's AppProject.isDestinationMatched (pkg/apis/application/v1alpha1), line by line."""
    any_matched, no_deny_matched = False, True
    for item in destinations:
        server_matched = _glob_match(item.get("server", ""), server)
        namespace_matched = _glob_match(item.get("namespace", ""), namespace)
        if server_matched and namespace_matched:
            any_matched = True
        elif (not server_matched and item.get("server", "").startswith("!")) or (
            not namespace_matched and item.get("namespace", "").startswith("!")
        ):
            no_deny_matched = False
    return any_matched and no_deny_matched


@pytest.mark.parametrize("namespace", ["kube-system", "argocd", "default", "qdrant"])
def test_the_appproject_admits_no_namespace_but_the_clients(namespace):
    """A client's Application cannot be pointed at the cluster's own namespaces. (A "!qdrant-portal"
    entry once meant to deny the portal's namespace admitted these: Argo CD reads a negated
    pattern as a match for everything else.)"""
    destinations = _project()["spec"]["destinations"]
    assert _admitted("qdrant-client1", destinations)
    assert not _admitted(namespace, destinations)


def test_applications_in_another_namespace_are_admitted_and_no_token_is_committed():
    assert _project("qdrant-apps")["spec"]["sourceNamespaces"] == ["qdrant-apps"]
    push_url = "https://x-access-token:ghp_secret@git.example.com/platform/qdrant-clusters.git"
    rendered = appproject_render(repo_url=push_url, project="p")
    assert b"ghp_secret" not in rendered and REPO in yaml.safe_load(rendered)["spec"]["sourceRepos"]
    assert "namespace" not in yaml.safe_load(rendered)["metadata"]  # applied into Argo CD's own


def test_a_clusters_failed_sync_is_tried_again_with_a_growing_pause():
    """One automated attempt per revision is all Argo CD makes otherwise: a failure a second try
    clears (a webhook timing out, a new namespace not ready) would leave the change undeployed."""
    retry = _appset()["spec"]["template"]["spec"]["syncPolicy"]["retry"]
    assert retry["limit"] >= 3 and retry["backoff"]["factor"] > 1
    assert retry["refresh"] is True  # a retry reads the revision again: a fix pushed meanwhile counts
