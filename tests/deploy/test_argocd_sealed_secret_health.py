"""deploy/argocd/sealed-secrets: the SealedSecret health check Argo CD runs (Lua), run in Lua 5.1.

Argo CD runs resource health checks in gopher-lua, a Lua 5.1; lupa's Lua 5.1 runtime stands in
for it. The objects are shaped as the sealed-secrets controller leaves them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lupa import lua51

CONFIGMAP = Path(__file__).resolve().parents[2] / "deploy" / "argocd" / "sealed-secrets" / "argocd-cm.yaml"
HEALTH_KEY = "resource.customizations.health.bitnami.com_SealedSecret"


def _health(obj: dict) -> tuple[str, str]:
    [document] = [doc for doc in yaml.safe_load_all(CONFIGMAP.read_text()) if doc]
    assert (document["kind"], document["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    runtime = lua51.LuaRuntime()
    check = runtime.eval(f"function(obj)\n{document['data'][HEALTH_KEY]}\nend")
    result = check(runtime.table_from(obj, recursive=True))
    return result["status"], result["message"]


def _sealed_secret(generation: int, observed: int | None, synced: str | None, message: str = "") -> dict:
    status: dict = {}
    if observed is not None:
        status["observedGeneration"] = observed
    if synced is not None:
        status["conditions"] = [{"type": "Synced", "status": synced, "message": message}]
    return {"metadata": {"name": "qdrant-acme-prod-apikey", "generation": generation}, "status": status}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        # A key rotation changed the SealedSecret: the condition left from before must not count.
        (_sealed_secret(2, 1, "True"), "Progressing"),
        (_sealed_secret(2, 2, "True"), "Healthy"),
        # Sealed with a certificate the controller has no key for: the old Secret stays.
        (_sealed_secret(2, 2, "False", "no key could decrypt secret"), "Degraded"),
        (_sealed_secret(1, None, None), "Progressing"),  # just created, not looked at yet
        ({"metadata": {"name": "x", "generation": 1}}, "Progressing"),  # no status at all
    ],
    ids=["previous-generation", "current-generation", "cannot-unseal", "new", "no-status"],
)
def test_a_sealed_secret_is_healthy_only_once_its_current_version_is_unsealed(obj, expected):
    status, message = _health(obj)
    assert status == expected
    if expected == "Degraded":
        assert message == "no key could decrypt secret"
