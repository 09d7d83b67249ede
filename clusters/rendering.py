"""A cluster's and a client's files in the GitOps repository, rendered from their rows.

The gitops library renders values files and sealed secrets from plain values; this module
knows the models: which values a cluster has, how to decrypt its keys, and when its sealed
secret needs sealing again.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import yaml
from django.conf import settings

from clusters.crypto import field_decrypt
from clusters.models import SPEC_FIELD_NAMES, Client, Cluster
from gitops.sealing import sealed_secret_render
from gitops.trees import TreeReader
from gitops.values import (
    API_KEY_SECRET_KEY,
    READ_ONLY_API_KEY_SECRET_KEY,
    apikey_secret_name,
    client_file_path,
    client_file_render,
    namespace_name,
    sealed_secret_path,
    values_path,
    values_render,
)

# A keyed fingerprint of the API keys, stored on the SealedSecret: sealing is randomized, so
# without it every render would produce a new file (and a commit) for unchanged keys.
KEYS_FINGERPRINT_ANNOTATION = "portal.qdrant.tech/keys-fingerprint"

Files = dict[str, bytes | None]


@cache
def _sealing_certificate(path: str) -> bytes:
    return Path(path).read_bytes()


def keys_fingerprint(*, api_key: str, read_only_api_key: str) -> str:
    """An HMAC of the keys under a key derived from ``SECRET_KEY``: it identifies them, never reveals them."""
    secret = hashlib.sha256(("gitops-fingerprint:" + settings.SECRET_KEY).encode()).digest()
    message = f"{api_key}\0{read_only_api_key}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _sealed_secret_fingerprint(existing: bytes | None) -> str | None:
    if not existing:
        return None
    try:
        manifest = yaml.safe_load(existing)
        return manifest["metadata"]["annotations"][KEYS_FINGERPRINT_ANNOTATION]
    except (yaml.YAMLError, KeyError, TypeError):
        return None


def _sealed_secret_file(*, cluster: Cluster, reader: TreeReader) -> Files:
    """The cluster's SealedSecret, re-sealed only when its keys changed; nothing without a certificate."""
    if not settings.GITOPS_SEALING_CERT:
        return {}
    client = cluster.client.slug
    path = sealed_secret_path(client, cluster.slug)
    api_key = field_decrypt(ciphertext=cluster.api_key_encrypted)
    read_only_api_key = field_decrypt(ciphertext=cluster.read_only_api_key_encrypted)
    fingerprint = keys_fingerprint(api_key=api_key, read_only_api_key=read_only_api_key)
    if _sealed_secret_fingerprint(reader.read(path)) == fingerprint:
        return {}
    manifest = yaml.safe_load(
        sealed_secret_render(
            certificate_pem=_sealing_certificate(settings.GITOPS_SEALING_CERT),
            namespace=namespace_name(client=client),
            name=apikey_secret_name(client=client, cluster=cluster.slug),
            data={API_KEY_SECRET_KEY: api_key, READ_ONLY_API_KEY_SECRET_KEY: read_only_api_key},
        )
    )
    manifest["metadata"]["annotations"] = {KEYS_FINGERPRINT_ANNOTATION: fingerprint}
    return {path: yaml.safe_dump(manifest, sort_keys=True, default_flow_style=False, width=120).encode()}


def cluster_files_render(
    *, cluster: Cluster, reader: TreeReader, overrides: Mapping[str, object] | None = None
) -> Files:
    """The files of one cluster folder that differ from git (``overrides``: a change's after-values, by API name)."""
    state = {api: getattr(cluster, field) for field, api in SPEC_FIELD_NAMES.items()}
    state.update({name: value for name, value in (overrides or {}).items() if name in state})
    path = values_path(cluster.client.slug, cluster.slug)
    existing = reader.read(path)
    values = values_render(
        existing=existing,
        client=cluster.client.slug,
        cluster=cluster.slug,
        replicas=int(state["replicas"]),
        version=str(state["version"]),
        storage_gi=int(state["storageGi"]),
    )
    files: Files = {path: values} if values != existing else {}
    files.update(_sealed_secret_file(cluster=cluster, reader=reader))
    return files


def client_files_render(*, client: Client, reader: TreeReader) -> Files:
    """The client's ``client.yaml`` for its current row, when git differs from it."""
    path = client_file_path(client.slug)
    content = client_file_render(client=client.slug, name=client.name, active=client.active)
    return {path: content} if content != reader.read(path) else {}
