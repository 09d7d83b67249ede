"""The files that bootstrap the gitops repository: the Argo CD ApplicationSet and a README."""

from __future__ import annotations

import yaml

APPLICATIONSET_PATH = "argocd/applicationset.yaml"
README_PATH = "README.md"
APPLICATIONSET_NAME = "qdrant-clusters"
ARGOCD_NAMESPACE = "argocd"
CLUSTERS_GLOB = "clients/*/*"
QDRANT_HELM_REPO = "https://qdrant.github.io/qdrant-helm"
QDRANT_CHART = "qdrant"
DESTINATION_SERVER = "https://kubernetes.default.svc"

# Go templates over the git directory generator's path: clients/<client>/<cluster>.
_CLIENT = "{{ index .path.segments 1 }}"
_CLUSTER = "{{ index .path.segments 2 }}"
_FOLDER = "{{ .path.path }}"


def applicationset_render(*, repo_url: str, branch: str, chart_version: str, project: str) -> bytes:
    """One Application per ``clients/<client>/<cluster>`` folder: the chart, its values, its secret.

    Applications are named ``qdrant.<client>.<cluster>``: joining with ``-`` would give
    ``a-b``/``c`` and ``a``/``b-c`` the same name.
    """
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": APPLICATIONSET_NAME, "namespace": ARGOCD_NAMESPACE},
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [
                {"git": {"repoURL": repo_url, "revision": branch, "directories": [{"path": CLUSTERS_GLOB}]}}
            ],
            "syncPolicy": {"preserveResourcesOnDeletion": True},
            "template": {
                "metadata": {
                    "name": f"qdrant.{_CLIENT}.{_CLUSTER}",
                    "labels": {"qdrant-portal/client": _CLIENT, "qdrant-portal/cluster": _CLUSTER},
                },
                "spec": {
                    "project": project,
                    "sources": [
                        {
                            "repoURL": QDRANT_HELM_REPO,
                            "chart": QDRANT_CHART,
                            "targetRevision": chart_version,
                            "helm": {
                                "releaseName": f"qdrant-{_CLIENT}-{_CLUSTER}",
                                "valueFiles": [f"$values/{_FOLDER}/values.yaml"],
                            },
                        },
                        {"repoURL": repo_url, "targetRevision": branch, "ref": "values"},
                        {
                            "repoURL": repo_url,
                            "targetRevision": branch,
                            "path": _FOLDER,
                            "directory": {"include": "apikey.sealed.yaml"},
                        },
                    ],
                    "destination": {"server": DESTINATION_SERVER, "namespace": f"qdrant-{_CLIENT}"},
                    "syncPolicy": {
                        "automated": {"prune": True, "selfHeal": True},
                        "syncOptions": ["CreateNamespace=true"],
                    },
                },
            },
        },
    }
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False, width=120).encode("utf-8")


def repository_readme_render() -> bytes:
    """The operators' README at the root of the gitops repository."""
    return b"""\
# Qdrant clusters (managed by Qdrant Portal)

Argo CD deploys this repository. Qdrant Portal commits to it; people may too.

## Layout

```
clients/<client>/client.yaml                    the client as the portal records it (no Application)
clients/<client>/<cluster>/values.yaml          Helm values for the official qdrant chart
clients/<client>/<cluster>/apikey.sealed.yaml   the cluster's API keys as a SealedSecret (when sealing is set up)
argocd/applicationset.yaml                      one Argo CD Application per cluster folder
```

`argocd/applicationset.yaml` makes one Application `qdrant.<client>.<cluster>` per folder
`clients/<client>/<cluster>`: the `qdrant` chart from https://qdrant.github.io/qdrant-helm,
release `qdrant-<client>-<cluster>` in namespace `qdrant-<client>`, with that folder's
`values.yaml` and `apikey.sealed.yaml`. Apply it once: `kubectl apply -n argocd -f argocd/applicationset.yaml`.

## Editing values by hand

The portal owns `replicaCount`, `image.tag`, `persistence.size` and the `env` entries
`QDRANT__SERVICE__API_KEY` and `QDRANT__SERVICE__READ_ONLY_API_KEY`; it overwrites them on
every change. Any other key you add (resources, affinity, other env entries...) is kept.
Comments are not kept.

## API keys

No API key is ever written here in plain text. The chart reads both keys from the Secret
`qdrant-<client>-<cluster>-apikey` (keys `api-key` and `read-only-api-key`) in namespace
`qdrant-<client>`.

When the portal has the sealed-secrets controller's certificate (`GITOPS_SEALING_CERT`,
from `kubeseal --fetch-cert`), it writes that Secret as `apikey.sealed.yaml`, sealed in
strict scope, and the controller creates it.

Without a certificate, create the Secret by hand with the keys the portal shows
(Credentials page or `GET /api/clients/<client>/clusters/<cluster>/credentials`):

```
kubectl create namespace qdrant-<client>
kubectl create secret generic qdrant-<client>-<cluster>-apikey \\
  --from-literal=api-key='<api key>' \\
  --from-literal=read-only-api-key='<read-only api key>' \\
  -n qdrant-<client>
```

After rotating the keys in the portal, replace the Secret the same way
(`kubectl delete secret ...` then create it again) and restart the cluster's pods.
"""
