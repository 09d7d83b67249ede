"""The files that bootstrap the gitops repository: the Argo CD ApplicationSet and a README."""

from __future__ import annotations

import json
from string import Template
from urllib.parse import urlsplit, urlunsplit

import yaml

APPLICATIONSET_PATH = "argocd/applicationset.yaml"
APPPROJECT_PATH = "argocd/appproject.yaml"
README_PATH = "README.md"
APPLICATIONSET_NAME = "qdrant-clusters"
ARGOCD_NAMESPACE = "argocd"
CLUSTERS_GLOB = "clients/*/*"
# Labels of every generated Application (the portal lists a client's Applications by them) and
# the name of the source whose revision is the portal's commit (the values file's repository).
CLIENT_LABEL = "qdrant-portal/client"
CLUSTER_LABEL = "qdrant-portal/cluster"
VALUES_SOURCE_REF = "values"
QDRANT_HELM_REPO = "https://qdrant.github.io/qdrant-helm"
QDRANT_CHART = "qdrant"
DESTINATION_SERVER = "https://kubernetes.default.svc"
# The chart's StatefulSet is named after the release; its volumes after this claim template.
VOLUME_CLAIM_TEMPLATE = "qdrant-storage"
# Kubernetes refuses changes to an existing StatefulSet's volumeClaimTemplates: Argo CD ignores
# them on a live StatefulSet, in its diff and (RespectIgnoreDifferences) when it syncs, so a new
# persistence.size never blocks a sync. A StatefulSet created anew gets the size from git.
IGNORED_DIFFERENCES = [
    {"group": "apps", "kind": "StatefulSet", "jsonPointers": ["/spec/volumeClaimTemplates"]}
]
SYNC_OPTIONS = ["CreateNamespace=true", "RespectIgnoreDifferences=true"]
# Argo CD tries each revision once on its own: a failure a second try would clear (a webhook
# timing out, a new namespace not ready) would otherwise leave the client's change undeployed
# until someone syncs by hand.
SYNC_RETRY = {"limit": 5, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "3m"}, "refresh": True}

# Go templates over the git directory generator's path: clients/<client>/<cluster>.
_CLIENT = "{{ index .path.segments 1 }}"
_CLUSTER = "{{ index .path.segments 2 }}"
_FOLDER = "{{ .path.path }}"


def application_name(*, client: str, cluster: str) -> str:
    """The Application the ApplicationSet generates for ``clients/<client>/<cluster>``."""
    return f"qdrant.{client}.{cluster}"


def repo_url_without_credentials(url: str) -> str:
    """``url`` as a committed manifest may show it: an HTTP(S) URL loses any user and password.

    A token in the push URL (``https://x-access-token:<token>@host/...``) would otherwise be
    committed and pushed; Argo CD takes its credentials from its own repository secret, matched
    on the URL without them. An SSH URL keeps its user (``git@``): Argo CD needs it, and it is
    no secret.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in {"http", "https"} or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def applicationset_render(
    *, repo_url: str, branch: str, chart_version: str, project: str, namespace: str = ARGOCD_NAMESPACE
) -> bytes:
    """One Application per ``clients/<client>/<cluster>`` folder: the chart, its values, its secret.

    Applications are named ``qdrant.<client>.<cluster>``: joining with ``-`` would give
    ``a-b``/``c`` and ``a``/``b-c`` the same name. Argo CD creates them in the ApplicationSet's
    own ``namespace`` (its control plane's, or one enabled for ApplicationSets in any namespace).
    """
    repo_url = repo_url_without_credentials(repo_url)
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": APPLICATIONSET_NAME, "namespace": namespace},
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [
                {"git": {"repoURL": repo_url, "revision": branch, "directories": [{"path": CLUSTERS_GLOB}]}}
            ],
            "syncPolicy": {"preserveResourcesOnDeletion": True},
            "template": {
                "metadata": {
                    "name": application_name(client=_CLIENT, cluster=_CLUSTER),
                    "labels": {CLIENT_LABEL: _CLIENT, CLUSTER_LABEL: _CLUSTER},
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
                        {"repoURL": repo_url, "targetRevision": branch, "ref": VALUES_SOURCE_REF},
                        {
                            "repoURL": repo_url,
                            "targetRevision": branch,
                            "path": _FOLDER,
                            "directory": {"include": "apikey.sealed.yaml"},
                        },
                    ],
                    "destination": {"server": DESTINATION_SERVER, "namespace": f"qdrant-{_CLIENT}"},
                    "ignoreDifferences": IGNORED_DIFFERENCES,
                    "syncPolicy": {
                        "automated": {"prune": True, "selfHeal": True},
                        "syncOptions": SYNC_OPTIONS,
                        "retry": SYNC_RETRY,
                    },
                },
            },
        },
    }
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False, width=120).encode("utf-8")


def appproject_render(*, repo_url: str, project: str, namespace: str = ARGOCD_NAMESPACE) -> bytes:
    """The AppProject the generated Applications name: what they may deploy, from where, to where.

    Without one that admits the ``Namespace`` kind, ``CreateNamespace=true`` fails every
    cluster's first sync ("resource :Namespace is not permitted in project"). It carries no
    namespace: AppProjects live in Argo CD's own (``kubectl apply -n argocd``), which need not be
    the ApplicationSet's; Applications created elsewhere are admitted by ``sourceNamespaces``.
    Namespaced kinds are not listed: a project without a whitelist admits them all (the chart's
    objects and the SealedSecret).
    """
    spec: dict = {
        "description": "Qdrant clusters that Qdrant Portal commits to git",
        "sourceRepos": [QDRANT_HELM_REPO, repo_url_without_credentials(repo_url)],
        # No "!qdrant-portal" entry: Argo CD counts a negated pattern as matching every other
        # namespace, kube-system included. The portal names no client so (clusters/validators.py).
        "destinations": [{"server": DESTINATION_SERVER, "namespace": "qdrant-*"}],
        "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
    }
    if namespace != ARGOCD_NAMESPACE:
        spec["sourceNamespaces"] = [namespace]
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": project},
        "spec": spec,
    }
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False, width=120).encode("utf-8")


# string.Template: "$$" is a shell "$".
_STORAGE_RUNBOOK = Template("""\
# 1. Grow each volume (its StorageClass must have allowVolumeExpansion: true), those left
#    over from an earlier scale-down too: a scale-up re-attaches them.
for claim in $$(kubectl -n $namespace get pvc -o name | grep -E '/$pvc-[0-9]+$$'); do
  kubectl -n $namespace patch "$$claim" -p '$patch'
done
kubectl -n $namespace get pvc    # wait until CAPACITY of every $pvc-N shows $size

# 2. In the portal's admin (Storage expansions), tick the request and run
#    "Mark storage expansion done": the portal commits persistence.size: $size.
#    Argo CD keeps syncing: it ignores volumeClaimTemplates on the live StatefulSet.

# 3. Re-create the StatefulSet from the new template; its pods and volumes stay.
kubectl -n $namespace delete statefulset $statefulset --cascade=orphan
#    Argo CD (Application $application) creates it again at once with $size in its
#    volumeClaimTemplates, and adopts the running pods without restarting them.
""")


def storage_runbook_render(*, namespace: str, statefulset: str, application: str, size: str) -> str:
    """The operator's commands that grow a cluster's volumes (concrete names, or placeholders)."""
    return _STORAGE_RUNBOOK.substitute(
        namespace=namespace,
        statefulset=statefulset,
        application=application,
        size=size,
        pvc=f"{VOLUME_CLAIM_TEMPLATE}-{statefulset}",
        patch=json.dumps({"spec": {"resources": {"requests": {"storage": size}}}}, separators=(",", ":")),
    )


_STOPPED_RUNBOOK = Template("""\
# Decommissioned: git has replicaCount: 0, so Argo CD scales the StatefulSet down.
kubectl -n $namespace get statefulset $release    # READY 0/0 once it has stopped
# Its volumes keep the data. Once the data may go (the retention agreed with the client),
# remove the cluster from git ("Remove from git…" on this page): this page then shows the
# commands that delete what is left.
""")

# Argo CD labels what it deploys app.kubernetes.io/instance=<Application> with label tracking
# (its default before 3.0); with annotation tracking the chart's own label, the release, stays.
# The volumes carry the release's label whatever Argo CD does: the StatefulSet controller copies
# the chart's selector labels onto each claim.
_REMOVAL_RUNBOOK = Template("""\
# 1. Wait until Argo CD has removed the Application (its ApplicationSet does when it next reads
#    git; the cluster's page says "deployed" then). It keeps what the Application deployed:
kubectl -n $argocd_namespace get application $application    # NotFound once it is gone
# 2. Delete what the chart made (the StatefulSet has no pods left) and the API keys: the
#    SealedSecret (skip that line without sealed-secrets), then their Secret (made by hand
#    without it; with it, the controller deletes it too):
kubectl -n $namespace delete $kinds \\
  -l 'app.kubernetes.io/instance in ($release,$application)'
kubectl -n $namespace delete sealedsecret $secret --ignore-not-found
kubectl -n $namespace delete secret $secret --ignore-not-found
kubectl -n $namespace get $kinds \\
  -l 'app.kubernetes.io/instance in ($release,$application)'    # No resources found
# 3. Delete its volumes, those of earlier scale-downs and snapshots too. This deletes the
#    cluster's data for good when their StorageClass deletes released volumes (reclaimPolicy
#    Delete); with Retain, delete the PersistentVolumes they leave as well.
kubectl -n $namespace get pvc -l app.kubernetes.io/instance=$release
kubectl -n $namespace delete pvc -l app.kubernetes.io/instance=$release
$namespace_note""")
# What the chart may make for a release (a ServiceMonitor only with the Prometheus operator).
_CHART_KINDS = "statefulset,service,configmap,secret,poddisruptionbudget,serviceaccount,ingress"


def retirement_runbook_render(
    *,
    removed: bool,
    namespace: str,
    release: str,
    application: str,
    secret: str,
    argocd_namespace: str,
    namespace_shared: bool,
) -> str:
    """The operator's commands for a decommissioned cluster: while it is stopped (check it, then
    remove it from git), or once removed from git (delete what is left, the volumes last).
    ``namespace_shared``: another cluster of the client is still in git, in the same namespace."""
    note = (
        f"# Other clusters of this client run in {namespace}: keep the namespace.\n"
        if namespace_shared
        else f"# No other cluster of this client is in git: once nothing else is left in it,\n"
        f"# kubectl delete namespace {namespace}\n"
    )
    runbook = _REMOVAL_RUNBOOK if removed else _STOPPED_RUNBOOK
    return runbook.substitute(
        namespace=namespace,
        release=release,
        application=application,
        secret=secret,
        argocd_namespace=argocd_namespace,
        kinds=_CHART_KINDS,
        namespace_note=note,
    )


_README_HEAD = """\
# Qdrant clusters (managed by Qdrant Portal)

Argo CD deploys this repository. Qdrant Portal commits to it; people may too.

## Layout

```
clients/<client>/client.yaml                    the client as the portal records it (no Application)
clients/<client>/<cluster>/values.yaml          Helm values for the official qdrant chart
clients/<client>/<cluster>/apikey.sealed.yaml   the cluster's API keys as a SealedSecret (when sealing is set up)
argocd/applicationset.yaml                      one Argo CD Application per cluster folder
argocd/appproject.yaml                          the Argo CD project those Applications belong to
```

`argocd/applicationset.yaml` makes one Application `qdrant.<client>.<cluster>` per folder
`clients/<client>/<cluster>`: the `qdrant` chart from https://qdrant.github.io/qdrant-helm,
release (and StatefulSet) `qdrant-<client>-<cluster>` in namespace `qdrant-<client>`, with
that folder's `values.yaml` and `apikey.sealed.yaml`. Apply both files once, and again whenever
they change: `kubectl apply -n argocd -f argocd/appproject.yaml` (into Argo CD's own namespace)
and `kubectl apply -f argocd/applicationset.yaml` (it names its namespace). The project admits
the chart's repository and this one, namespaces `qdrant-*` (the portal names no client
`portal`: `qdrant-portal` is its own), and the `Namespace` kind that
`CreateNamespace=true` needs. It tells Argo CD to ignore
`volumeClaimTemplates` of a live StatefulSet (Kubernetes refuses to change them), so a new
`persistence.size` never blocks a sync; see "Growing storage" for how volumes really grow.

## Editing values by hand

The portal owns `replicaCount`, `image.tag`, `persistence.size`, the `env` entries
`QDRANT__SERVICE__API_KEY`, `QDRANT__SERVICE__READ_ONLY_API_KEY` and
`QDRANT__SERVICE__ALT_API_KEY`, and the pod annotation
`podAnnotations."portal.qdrant.tech/api-keys-fingerprint"`; it overwrites them on every
change. Any other key you add (resources, affinity, other env entries...) is kept.
Comments are not kept. Worth adding for production:

- `resources` (requests and limits): the chart sets none, so Qdrant pods are the first a
  node short of memory evicts.
- How clients reach the cluster: the chart makes a `ClusterIP` Service (REST 6333, gRPC
  6334, plain HTTP) and no ingress, while the portal shows users the address its
  `QDRANT_ENDPOINT_TEMPLATE` names; `service.type`, `ingress`, or a route at your edge.
- `metrics.serviceMonitor.authorization` naming the Secret's `read-only-api-key`, if you
  turn the ServiceMonitor on: the chart adds a key to it only from `apiKey`/`readOnlyApiKey`,
  which stay out of this repository, so Prometheus would be refused.

## API keys

No API key is ever written here in plain text. The chart reads the keys from the Secret
`qdrant-<client>-<cluster>-apikey` (keys `api-key`, `read-only-api-key`, and `alt-api-key`
while a rotation is in progress) in namespace `qdrant-<client>`. Containers read them only
when they start, so every key change also changes the pod annotation
`portal.qdrant.tech/api-keys-fingerprint` (a keyed hash, never a key): the StatefulSet then
restarts its pods one at a time.

- Qdrant v1.17.0 and later accept a second key (`alt_api_key`). A rotation then has two
  phases: the new key is added as `alt-api-key` next to the old one (both accepted), clients
  switch to it, and when the user finishes the rotation (or after the portal's grace period,
  `KEY_ROTATION_GRACE`) the new key becomes `api-key` and the old one is removed. Qdrant has
  no alternate read-only key: the read-only key is replaced when the rotation starts.
- Older versions take the new keys in one step: connections using the old keys fail as the
  pods restart.

When the portal has the sealed-secrets controller's certificate (`GITOPS_SEALING_CERT`,
from `kubeseal --fetch-cert`), it writes that Secret as `apikey.sealed.yaml`, sealed in
strict scope, in sync wave -1 so that Argo CD waits for the controller to update the Secret
before it rolls the pods (with the portal's SealedSecret health check installed in Argo CD:
its built-in one does not wait for the current version).

Without a certificate, create the Secret by hand with the keys the portal shows
(Credentials page or `GET /api/clients/<client>/clusters/<cluster>/credentials`):

```
kubectl create namespace qdrant-<client>
kubectl create secret generic qdrant-<client>-<cluster>-apikey \\
  --from-literal=api-key='<api key>' \\
  --from-literal=read-only-api-key='<read-only api key>' \\
  -n qdrant-<client>
```

When a rotation starts, update the Secret and restart the pods (the portal's commit may have
rolled them before the Secret changed). Put the new key in `api-key` and the old one in
`alt-api-key`: Qdrant accepts both while the rotation lasts, and when it finishes (the
user, or the portal after its grace period, at any hour) the portal drops
`QDRANT__SERVICE__ALT_API_KEY` from the values and the pods keep the new key. Run it once
or twice, it does the same: a second run finds the new key in `api-key` and changes nothing.

```
NEW_KEY='<new api key>'
OLD_KEY=$(kubectl -n qdrant-<client> get secret qdrant-<client>-<cluster>-apikey \\
  -o jsonpath='{.data.api-key}' | base64 -d)
if [ "$OLD_KEY" != "$NEW_KEY" ]; then
  kubectl -n qdrant-<client> patch secret qdrant-<client>-<cluster>-apikey --type merge -p \\
    "{\\"stringData\\":{\\"api-key\\":\\"$NEW_KEY\\",\\"alt-api-key\\":\\"$OLD_KEY\\",\\"read-only-api-key\\":\\"<new read-only api key>\\"}}"
  kubectl -n qdrant-<client> rollout restart statefulset qdrant-<client>-<cluster>
fi
```

Once the rotation has finished, take the retired key out of the Secret. Qdrant no longer
reads it, but the next rotation's start would, from the moment its commit rolls the pods
until you update the Secret again:

```
kubectl -n qdrant-<client> patch secret qdrant-<client>-<cluster>-apikey --type json \\
  -p '[{"op": "remove", "path": "/data/alt-api-key"}]'
```

A one-step rotation (older Qdrant versions): re-create the Secret as above with the keys
shown, then restart the pods the same way.

## Growing storage

`persistence.size` becomes the StatefulSet's `volumeClaimTemplates`, which Kubernetes never
changes on an existing StatefulSet. So when a user asks for more storage the portal changes
nothing here: it records a request, shows the user "waiting for an operator", and lists it
in its admin (Storage expansions, with these commands filled in). The operator then runs:

```
"""

_README_TAIL = """\
```

The order matters: if the StatefulSet were re-created before step 2, Argo CD would re-create
it from the old size. A request can also be cancelled (by the user, or in the admin) while
it is waiting.

## Versions and replicas

The portal offers only upgrades, one minor version at a time (Qdrant supports neither
downgrades nor skipped minors), and asks users to confirm a scale-down: Qdrant does not move
shards off a peer that disappears, nor forget it. Before `replicaCount` goes down, move the
shards off the highest-numbered pods and remove those peers (`DELETE /cluster/peer/{peer_id}`
on the cluster): a peer gone but not removed still votes, and without a majority of its peers
up Qdrant makes no cluster-wide change (creating or deleting a collection, moving a shard).
"""


def repository_readme_render() -> bytes:
    """The operators' README at the root of the gitops repository, with the storage runbook."""
    runbook = storage_runbook_render(
        namespace="qdrant-<client>",
        statefulset="qdrant-<client>-<cluster>",
        application="qdrant.<client>.<cluster>",
        size="<size>Gi",
    )
    return (_README_HEAD + runbook + _README_TAIL).encode("utf-8")
