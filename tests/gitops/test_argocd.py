from __future__ import annotations

import re

import yaml

from gitops.argocd import applicationset_render, repository_readme_render

REPO = "https://git.example.com/platform/qdrant-clusters.git"


def _appset() -> dict:
    return yaml.safe_load(
        applicationset_render(repo_url=REPO, branch="main", chart_version="1.15.5", project="qdrant-clusters")
    )


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
