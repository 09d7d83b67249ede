"""A cluster's and a client's files in the GitOps repository, rendered from their rows.

The gitops library renders values files and sealed secrets from plain values; this module
knows the models: which values a cluster has, how to decrypt its keys, and when its sealed
secret needs sealing again.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from django.conf import settings

from clusters.models import SPEC_FIELD_NAMES, Client, Cluster
from config.crypto import CLUSTER_API_KEYS, FieldDecryptionError, field_decrypt
from gitops.errors import ContentError
from gitops.sealing import SealingError, sealed_secret_render
from gitops.trees import TreeReader
from gitops.values import (
    ALT_API_KEY_SECRET_KEY,
    API_KEY_SECRET_KEY,
    READ_ONLY_API_KEY_SECRET_KEY,
    apikey_secret_name,
    client_file_path,
    client_file_render,
    cluster_folder,
    namespace_name,
    sealed_secret_path,
    values_path,
    values_render,
)

# A keyed fingerprint of the API keys, stored on the SealedSecret: sealing is randomized, so
# without it every render would produce a new file (and a commit) for unchanged keys.
KEYS_FINGERPRINT_ANNOTATION = "portal.qdrant.tech/keys-fingerprint"
# Argo CD applies the SealedSecret in an earlier wave than the chart and waits until the
# controller has updated the Secret (its health), so restarted pods read the new keys.
SYNC_WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"
SEALED_SECRET_SYNC_WAVE = "-1"  # noqa: S105 - a sync wave, not a secret

Files = dict[str, bytes | None]


def _sealing_certificate(path: str) -> bytes:
    try:  # read again once the file changes (a ConfigMap fixed): no restart needed
        return _sealing_certificate_read(path, Path(path).stat().st_mtime_ns)
    except OSError as error:  # a content problem, as a certificate that is not PEM: the change waits
        raise SealingError(f"The sealing certificate {path} cannot be read: {error.strerror}.") from error


@cache
def _sealing_certificate_read(path: str, modified: int) -> bytes:
    return Path(path).read_bytes()


class KeysUnreadable(ContentError):
    """A cluster's API keys cannot be decrypted (``FIELD_ENCRYPTION_KEY``): its change waits, as
    one git cannot take does, and the other clusters' changes are delivered all the same."""


@dataclass(frozen=True)
class ClusterKeys:
    """A cluster's decrypted API keys; ``alt_api_key`` is set only during a two-phase rotation."""

    api_key: str
    read_only_api_key: str
    alt_api_key: str = ""

    @classmethod
    def of(cls, cluster: Cluster) -> ClusterKeys:
        alt = cluster.alt_api_key_encrypted
        try:
            return cls(
                api_key=field_decrypt(ciphertext=cluster.api_key_encrypted, purpose=CLUSTER_API_KEYS),
                read_only_api_key=field_decrypt(
                    ciphertext=cluster.read_only_api_key_encrypted, purpose=CLUSTER_API_KEYS
                ),
                alt_api_key=field_decrypt(ciphertext=alt, purpose=CLUSTER_API_KEYS) if alt else "",
            )
        except FieldDecryptionError as error:  # whoever reads it (gitops_sync) is told which and what to do
            raise FieldDecryptionError(
                f"The API keys of cluster {cluster} cannot be decrypted with FIELD_ENCRYPTION_KEY: put the "
                "key they were encrypted with back at its end (README, Configuration: FIELD_ENCRYPTION_KEY)."
            ) from error


def keys_fingerprint(*, api_key: str, read_only_api_key: str, alt_api_key: str = "") -> str:
    """An HMAC of the keys under a key derived from ``SECRET_KEY``: it identifies them, never reveals them."""
    secret = hashlib.sha256(("gitops-fingerprint:" + settings.SECRET_KEY).encode()).digest()
    message = f"{api_key}\0{read_only_api_key}" + (f"\0{alt_api_key}" if alt_api_key else "")
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def _sealed_secret_fingerprint(existing: bytes | None) -> str | None:
    if not existing:
        return None
    try:
        manifest = yaml.safe_load(existing)
        return manifest["metadata"]["annotations"][KEYS_FINGERPRINT_ANNOTATION]
    except (yaml.YAMLError, KeyError, TypeError):
        return None


def _sealed_secret_file(
    *, cluster: Cluster, keys: ClusterKeys, fingerprint: str, reader: TreeReader
) -> Files:
    """The cluster's SealedSecret, re-sealed only when its keys changed; nothing without a certificate."""
    if not settings.GITOPS_SEALING_CERT:
        return {}
    client = cluster.client.slug
    path = sealed_secret_path(client, cluster.slug)
    if _sealed_secret_fingerprint(reader.read(path)) == fingerprint:
        return {}
    data = {API_KEY_SECRET_KEY: keys.api_key, READ_ONLY_API_KEY_SECRET_KEY: keys.read_only_api_key}
    if keys.alt_api_key:
        data[ALT_API_KEY_SECRET_KEY] = keys.alt_api_key
    manifest = yaml.safe_load(
        sealed_secret_render(
            certificate_pem=_sealing_certificate(settings.GITOPS_SEALING_CERT),
            namespace=namespace_name(client=client),
            name=apikey_secret_name(client=client, cluster=cluster.slug),
            data=data,
        )
    )
    manifest["metadata"]["annotations"] = {
        KEYS_FINGERPRINT_ANNOTATION: fingerprint,
        SYNC_WAVE_ANNOTATION: SEALED_SECRET_SYNC_WAVE,
    }
    return {path: yaml.safe_dump(manifest, sort_keys=True, default_flow_style=False, width=120).encode()}


def cluster_files_render(
    *,
    cluster: Cluster,
    reader: TreeReader,
    changes: Mapping[str, object] | None = None,
    keys_changed: bool = False,
) -> Files:
    """The files of one cluster folder that differ from git.

    ``changes``: a change's ``[before, after]`` values, by API name: the after-values are
    rendered, over a file that must hold the before-values (or the after-values already; else
    :class:`ValuesError`: it was edited by hand). ``keys_changed``: the change gave the
    cluster new keys, so the pod template takes their fingerprint (and the pods roll) even in
    a values file written before the portal put the fingerprint there.
    """
    state = {api: getattr(cluster, field) for field, api in SPEC_FIELD_NAMES.items()}
    pairs = {name: pair for name, pair in (changes or {}).items() if name in state and isinstance(pair, list)}
    state.update({name: after for name, (_before, after) in pairs.items()})
    fields = {api: field for field, api in SPEC_FIELD_NAMES.items()}
    keys = ClusterKeys.of(cluster)
    fingerprint = keys_fingerprint(
        api_key=keys.api_key, read_only_api_key=keys.read_only_api_key, alt_api_key=keys.alt_api_key
    )
    path = values_path(cluster.client.slug, cluster.slug)
    existing = reader.read(path)
    values = values_render(
        existing=existing,
        client=cluster.client.slug,
        cluster=cluster.slug,
        replicas=int(state["replicas"]),
        version=str(state["version"]),
        storage_gi=int(state["storageGi"]),
        alt_api_key=bool(keys.alt_api_key),
        keys_fingerprint=fingerprint,
        keys_fingerprint_add=keys_changed,
        replacing={fields[name]: before for name, (before, _after) in pairs.items()},
    )
    files: Files = {path: values} if values != existing else {}
    files.update(_sealed_secret_file(cluster=cluster, keys=keys, fingerprint=fingerprint, reader=reader))
    return files


def cluster_stop_render(*, cluster: Cluster, reader: TreeReader) -> Files:
    """A decommissioned cluster's values file with zero replicas (its keys are erased: the file
    keeps the Secret's name, the Secret stays as it is). Nothing when the file is gone."""
    path = values_path(cluster.client.slug, cluster.slug)
    existing = reader.read(path)
    if existing is None:
        return {}
    values = values_render(
        existing=existing,
        client=cluster.client.slug,
        cluster=cluster.slug,
        replicas=0,
        version=cluster.version,
        storage_gi=cluster.storage_gi,
    )
    return {path: values} if values != existing else {}


def cluster_removal_render(*, cluster: Cluster, reader: TreeReader) -> Files:
    """A decommissioned cluster's folder removed: every file in it, one added by hand too (while
    a file is left, the folder stays and the ApplicationSet keeps its Application)."""
    return dict.fromkeys(reader.list(cluster_folder(cluster.client.slug, cluster.slug)), None)


def client_files_render(*, client: Client, reader: TreeReader) -> Files:
    """The client's ``client.yaml`` for its current row, when git differs from it."""
    path = client_file_path(client.slug)
    content = client_file_render(client=client.slug, name=client.name, active=client.active)
    return {path: content} if content != reader.read(path) else {}
