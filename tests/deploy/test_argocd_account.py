"""deploy/argocd/portal-account: the read-only Argo CD account the portal reads deployments with."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml
from django.conf import settings

ACCOUNT_DIR = Path(__file__).resolve().parents[2] / "deploy" / "argocd" / "portal-account"


def _configmap(name: str) -> dict:
    [document] = [doc for doc in yaml.safe_load_all((ACCOUNT_DIR / f"{name}.yaml").read_text()) if doc]
    assert (document["apiVersion"], document["kind"]) == ("v1", "ConfigMap")
    assert document["metadata"]["name"] == name and document["metadata"]["namespace"] == "argocd"
    return document["data"]


def test_the_portal_account_holds_api_tokens_and_cannot_sign_in():
    data = _configmap("argocd-cm")
    assert data == {"accounts.portal": "apiKey"}  # no "login": no UI or CLI sign-in with a password


def test_the_portal_may_only_read_the_applications_of_the_clusters_project():
    data = _configmap("argocd-rbac-cm")
    assert set(data) == {"policy.qdrant-portal.csv"}  # a key of its own: the existing policy.csv stays
    rows = [
        [field.strip() for field in row]
        for row in csv.reader(data["policy.qdrant-portal.csv"].splitlines())
        if row and not row[0].startswith("#")
    ]
    policies = [row for row in rows if row[0] == "p"]
    bindings = [row for row in rows if row[0] == "g"]
    assert policies == [
        ["p", "role:qdrant-portal-reader", "applications", "get", f"{settings.ARGOCD_PROJECT}/*", "allow"]
    ]
    assert bindings == [["g", "portal", "role:qdrant-portal-reader"]]
