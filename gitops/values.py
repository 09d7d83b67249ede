"""Helm values for the official Qdrant chart: the keys the portal owns, merged into the file.

The portal owns ``replicaCount``, ``image.tag``, ``persistence.size``, the API key ``env``
entries (taken from a Secret, never inline: two, or three while a key rotation lets Qdrant
accept an alternate key) and one pod annotation, a keyed fingerprint of the keys: environment
variables are read when a container starts, so the pods roll only if the pod template changes
when the keys do. Everything else in the file was put there by people and is kept. Inputs are validated here too, so that no value can ever
turn into extra YAML keys whatever the callers checked.

Each client folder also holds ``client.yaml`` (slug, name, namespace, active), written whole
from the database: no Helm values, just a record of the client for people reading git.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from gitops.errors import ContentError

SLUG_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
# The Docker reference grammar for a tag.
IMAGE_TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
REPLICAS_LIMIT = 1000
STORAGE_GI_LIMIT = 1_000_000

API_KEY_ENV = "QDRANT__SERVICE__API_KEY"
READ_ONLY_API_KEY_ENV = "QDRANT__SERVICE__READ_ONLY_API_KEY"
# Qdrant's ``service.alt_api_key`` (v1.17.0 and later): a second key that acts like the first.
ALT_API_KEY_ENV = "QDRANT__SERVICE__ALT_API_KEY"
API_KEY_SECRET_KEY = "api-key"  # noqa: S105 - a key name in the Secret, not a secret
READ_ONLY_API_KEY_SECRET_KEY = "read-only-api-key"  # noqa: S105 - a key name, as above
ALT_API_KEY_SECRET_KEY = "alt-api-key"  # noqa: S105 - a key name, as above
_OWNED_ENV = ((API_KEY_ENV, API_KEY_SECRET_KEY), (READ_ONLY_API_KEY_ENV, READ_ONLY_API_KEY_SECRET_KEY))
_OWNED_ENV_NAMES = {API_KEY_ENV, READ_ONLY_API_KEY_ENV, ALT_API_KEY_ENV}
# The chart's own key options: a hand-written one would put a key in git in plaintext (or have
# the chart generate one) in a Secret named like the portal's sealed one. The portal owns the keys.
_CHART_KEY_OPTIONS = ("apiKey", "readOnlyApiKey")
# On the pod template: it changes whenever the keys do, so the StatefulSet rolls its pods.
KEYS_FINGERPRINT_ANNOTATION = "portal.qdrant.tech/api-keys-fingerprint"
_FINGERPRINT_PATTERN = re.compile(r"^[0-9a-f]{16,128}$")

# libyaml when present: the same output, several times faster than the pure-Python codec.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

CLIENT_FILE_HEADER = (
    b"# Managed by Qdrant Portal: written from the portal's database, edits are overwritten.\n"
    b"# It records the client; Argo CD deploys only the cluster folders next to it.\n"
)

HEADER = (
    b"# Managed by Qdrant Portal. replicaCount, image.tag, persistence.size and the\n"
    b"# QDRANT__SERVICE__*API_KEY env entries are overwritten; other keys are kept.\n"
)


class ValuesError(ContentError, ValueError):
    """Values that cannot be rendered (a bad input or a values file that is not a mapping)."""


def _slug(value: object, what: str) -> str:
    if not isinstance(value, str) or not SLUG_PATTERN.fullmatch(value):
        raise ValuesError(f"{what} must be a slug matching {SLUG_PATTERN.pattern}.")
    return value


def _whole(value: object, what: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ValuesError(f"{what} must be a whole number from {low} to {high}.")
    return value


# deploy/k8s runs the portal here: no client's clusters go into it (their names would say so).
PORTAL_NAMESPACE = "qdrant-portal"


def namespace_name(*, client: str) -> str:
    return f"qdrant-{_slug(client, 'client')}"


def release_name(*, client: str, cluster: str) -> str:
    return f"qdrant-{_slug(client, 'client')}-{_slug(cluster, 'cluster')}"


def apikey_secret_name(*, client: str, cluster: str) -> str:
    return f"{release_name(client=client, cluster=cluster)}-apikey"


def client_folder(client: str) -> str:
    return f"clients/{_slug(client, 'client')}"


def cluster_folder(client: str, cluster: str) -> str:
    return f"{client_folder(client)}/{_slug(cluster, 'cluster')}"


VALUES_FILE_NAME = "values.yaml"
SEALED_SECRET_FILE_NAME = "apikey.sealed.yaml"  # noqa: S105 - a file name, not a secret


def values_path(client: str, cluster: str) -> str:
    return f"{cluster_folder(client, cluster)}/{VALUES_FILE_NAME}"


def client_file_path(client: str) -> str:
    """The client's own file: directly in ``clients/<client>/``, so no Argo CD Application is made of it."""
    return f"{client_folder(client)}/client.yaml"


def sealed_secret_path(client: str, cluster: str) -> str:
    return f"{cluster_folder(client, cluster)}/{SEALED_SECRET_FILE_NAME}"


def _mapping(parent: dict[str, Any], key: str, file_hint: str) -> dict[str, Any]:
    current = parent.get(key)
    if current is None:
        current = parent[key] = {}
    if not isinstance(current, dict):
        raise ValuesError(f"{file_hint}: '{key}' must be a mapping to set the portal's keys in it.")
    return current


def _yaml_text(data: dict[str, Any]) -> str:
    """Deterministic block YAML: sorted keys, two-space indents, Unicode kept."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=120,
        indent=2,
    )


def values_load(existing: bytes | None) -> dict[str, Any]:
    """Parse a values file (None or empty → {}); raise :class:`ValuesError` if not a mapping."""
    if existing is None:
        return {}
    try:
        data = yaml.load(existing, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        raise ValuesError(f"The values file is not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValuesError("The values file must be a YAML mapping.")
    return data


def _env_entries(env: Any, secret_name: str, alt_api_key: bool, hint: str) -> list[Any]:
    """The hand-written entries, then the portal's: each key read from the Secret."""
    if env is None:
        env = []
    if not isinstance(env, list):
        raise ValuesError(f"{hint}: 'env' must be a list to set the portal's entries in it.")
    kept = [entry for entry in env if not (isinstance(entry, dict) and entry.get("name") in _OWNED_ENV_NAMES)]
    owned = [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}
        for name, key in _OWNED_ENV
    ]
    if alt_api_key:
        # optional: a pod that starts before the Secret has the key still starts (with one key).
        reference = {"name": secret_name, "key": ALT_API_KEY_SECRET_KEY, "optional": True}
        owned.append({"name": ALT_API_KEY_ENV, "valueFrom": {"secretKeyRef": reference}})
    return kept + owned


def _fingerprint_set(data: dict[str, Any], fingerprint: str | None, add: bool, hint: str) -> None:
    if fingerprint is None:
        return
    if not isinstance(fingerprint, str) or not _FINGERPRINT_PATTERN.fullmatch(fingerprint):
        raise ValuesError("keys_fingerprint must be a hexadecimal digest.")
    present = (
        isinstance(data.get("podAnnotations"), dict) and KEYS_FINGERPRINT_ANNOTATION in data["podAnnotations"]
    )
    if add or present:
        _mapping(data, "podAnnotations", hint)[KEYS_FINGERPRINT_ANNOTATION] = fingerprint


# Where a values file holds each spec value of ``values_render``, and how it is written there.
_SPEC_KEYS: dict[str, tuple[tuple[str, ...], Callable[[Any], Any]]] = {
    "replicas": (("replicaCount",), lambda value: value),
    "version": (("image", "tag"), lambda value: value),
    "storage_gi": (("persistence", "size"), lambda value: f"{value}Gi"),
}


def _value_at(data: Any, keys: tuple[str, ...]) -> Any:
    """The value at ``keys`` (``("image", "tag")``) in parsed values; None where there is none."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _replaced_check(
    data: dict[str, Any], replacing: Mapping[str, Any], new: Mapping[str, Any], hint: str
) -> None:
    """Each value a change sets must be, in the file, the one it replaces (or already the new one;
    a new cluster's and a file's missing key replace nothing).

    Another one was put there by hand: the change, described and confirmed from the portal's
    value, would do something else (remove peers nobody confirmed removing, downgrade Qdrant).
    """
    for name, before in replacing.items():
        keys, written = _SPEC_KEYS[name]
        held = _value_at(data, keys)
        if before is None or held is None or held in (written(before), written(new[name])):
            continue
        where, held, before = ".".join(keys), str(held)[:40], written(before)
        raise ValuesError(
            f"{hint}: {where} is {held} in git where the portal has {before}, so this change would not "
            f"do what it says; put {before} back in git, or first change the portal to {held}"
        )


def values_render(
    *,
    existing: bytes | None,
    client: str,
    cluster: str,
    replicas: int,
    version: str,
    storage_gi: int,
    alt_api_key: bool = False,
    keys_fingerprint: str | None = None,
    keys_fingerprint_add: bool = True,
    replacing: Mapping[str, Any] | None = None,
) -> bytes:
    """The values file with the portal's keys set from these values and every other key kept.

    ``alt_api_key``: also pass the Secret's ``alt-api-key`` to Qdrant (a rotation in progress).
    ``keys_fingerprint`` goes into ``podAnnotations``; with ``keys_fingerprint_add`` False it is
    only updated where the file already has it (or the file is new), so that rendering a file
    written before the annotation existed does not restart that cluster's pods. ``replacing``:
    a change's values before it (``replicas``, ``version``, ``storage_gi``); the file must hold
    them (or the new ones), else :class:`ValuesError`.
    """
    secret_name = apikey_secret_name(client=client, cluster=cluster)
    replicas = _whole(replicas, "replicas", 0, REPLICAS_LIMIT)
    storage_gi = _whole(storage_gi, "storage_gi", 1, STORAGE_GI_LIMIT)
    if not isinstance(version, str) or not IMAGE_TAG_PATTERN.fullmatch(version):
        raise ValuesError("version must be an image tag.")

    data = values_load(existing)
    hint = values_path(client, cluster)
    new = {"replicas": replicas, "version": version, "storage_gi": storage_gi}
    _replaced_check(data, replacing or {}, new, hint)
    data["replicaCount"] = replicas
    _mapping(data, "image", hint)["tag"] = version
    _mapping(data, "persistence", hint)["size"] = f"{storage_gi}Gi"
    data["env"] = _env_entries(data.get("env"), secret_name, alt_api_key is True, hint)
    for option in _CHART_KEY_OPTIONS:
        data.pop(option, None)
    _fingerprint_set(data, keys_fingerprint, keys_fingerprint_add or not existing, hint)
    try:
        text = _yaml_text(data)
    except (TypeError, yaml.YAMLError) as error:  # e.g. keys of mixed types cannot be sorted
        raise ValuesError(f"{hint}: the values file cannot be written back: {error}") from error
    return HEADER + text.encode("utf-8")


def _owned_env(data: dict[str, Any]) -> dict[str, Any]:
    env = data.get("env")
    entries = env if isinstance(env, list) else []
    return {
        entry["name"]: entry
        for entry in entries
        if isinstance(entry, dict) and entry.get("name") in _OWNED_ENV_NAMES
    }


def _shown(value: Any) -> str:
    return "(none)" if value is None else str(value)[:40]


def values_owned_changes(*, before: bytes | None, after: bytes) -> list[str]:
    """What ``after`` changes of the portal's own values in ``before``, one phrase each
    (``image.tag v1.19.0 -> v1.18.3``), for an operator to see before it happens. A ``before``
    that cannot be parsed reads as empty."""
    try:
        old = values_load(before)
    except ValuesError:
        old = {}
    new, changes = values_load(after), []
    for keys in sorted(keys for keys, _written in _SPEC_KEYS.values()):
        held, put = _value_at(old, keys), _value_at(new, keys)
        if held != put:
            changes.append(f"{'.'.join(keys)} {_shown(held)} -> {_shown(put)}")
    env_before, env_after = _owned_env(old), _owned_env(new)
    for name in sorted(env_before.keys() | env_after.keys()):
        if env_before.get(name) != env_after.get(name):
            what = "added" if name not in env_before else "removed" if name not in env_after else "changed"
            changes.append(f"env {name} {what}")
    fingerprint = ("podAnnotations", KEYS_FINGERPRINT_ANNOTATION)
    if _value_at(old, fingerprint) != _value_at(new, fingerprint):
        changes.append("API keys fingerprint changed (the pods restart with the keys of the database)")
    changes += [f"{option} removed" for option in _CHART_KEY_OPTIONS if option in old and option not in new]
    return changes


def client_file_render(*, client: str, name: str, active: bool) -> bytes:
    """The client's ``client.yaml``: slug, display name, Kubernetes namespace and whether it is active."""
    if not isinstance(name, str):
        raise ValuesError("name must be text.")
    if not isinstance(active, bool):
        raise ValuesError("active must be true or false.")
    data = {
        "slug": _slug(client, "client"),
        "name": name,
        "namespace": namespace_name(client=client),
        "active": active,
    }
    return CLIENT_FILE_HEADER + _yaml_text(data).encode("utf-8")
