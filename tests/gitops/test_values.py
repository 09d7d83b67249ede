from __future__ import annotations

import pytest
import yaml

from gitops.errors import ContentError
from gitops.values import (
    HEADER,
    ValuesError,
    apikey_secret_name,
    sealed_secret_path,
    values_path,
    values_render,
)

OWNED = {"client": "acme", "cluster": "prod", "replicas": 3, "version": "v1.15.5", "storage_gi": 20}
API_KEY_ENTRIES = [
    {
        "name": "QDRANT__SERVICE__API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "qdrant-acme-prod-apikey", "key": "api-key"}},
    },
    {
        "name": "QDRANT__SERVICE__READ_ONLY_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "qdrant-acme-prod-apikey", "key": "read-only-api-key"}},
    },
]


def _render(existing: bytes | None = None, **overrides) -> dict:
    return yaml.safe_load(values_render(existing=existing, **{**OWNED, **overrides}))


def test_a_new_values_file_holds_exactly_the_owned_keys_with_their_types():
    assert _render() == {
        "replicaCount": 3,
        "image": {"tag": "v1.15.5"},
        "persistence": {"size": "20Gi"},
        "env": API_KEY_ENTRIES,
    }


def test_rendering_is_deterministic_and_idempotent():
    first = values_render(existing=None, **OWNED)

    assert values_render(existing=None, **OWNED) == first
    assert values_render(existing=first, **OWNED) == first
    assert first.startswith(HEADER)


def test_hand_edited_keys_survive_and_owned_keys_are_overwritten():
    existing = b"""\
replicaCount: 1
image:
  tag: v1.0.0
  pullPolicy: Always
  repository: mirror.example.com/qdrant
persistence:
  size: 10Gi
  storageClassName: fast
resources:
  limits: {memory: 8Gi}
env:
  - name: QDRANT__LOG_LEVEL
    value: DEBUG
  - name: QDRANT__SERVICE__API_KEY
    value: plaintext-from-the-old-seed
"""

    values = _render(existing)

    assert values["replicaCount"] == 3
    assert values["image"] == {
        "tag": "v1.15.5",
        "pullPolicy": "Always",
        "repository": "mirror.example.com/qdrant",
    }
    assert values["persistence"] == {"size": "20Gi", "storageClassName": "fast"}
    assert values["resources"] == {"limits": {"memory": "8Gi"}}
    assert values["env"] == [{"name": "QDRANT__LOG_LEVEL", "value": "DEBUG"}, *API_KEY_ENTRIES]
    assert b"plaintext-from-the-old-seed" not in values_render(existing=existing, **OWNED)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("replicas", "1\nimage: x"),
        ("replicas", "3"),
        ("replicas", True),
        ("replicas", 3.0),
        ("replicas", -1),
        ("replicas", 10**6),
        ("storage_gi", "20Gi"),
        ("storage_gi", 0),
        ("storage_gi", False),
        ("version", "v1.15.5\nreplicaCount: 99"),
        ("version", "v1.15.5 # x"),
        ("version", ""),
        ("version", 1.15),
        ("client", "Acme"),
        ("client", "acme/../../x"),
        ("client", "acme\nreplicaCount: 9"),
        ("cluster", "-prod"),
        ("cluster", "x" * 41),
    ],
)
def test_hostile_values_are_refused_before_any_yaml_is_written(field, value):
    with pytest.raises(ValuesError):
        values_render(existing=None, **{**OWNED, field: value})


@pytest.mark.parametrize("version", ["v1.15.5", "1.12", "yes", "null", "1e3", "latest"])
def test_values_keep_their_types_whatever_they_look_like_in_yaml(version):
    values = _render(version=version, replicas=0)

    assert values["image"]["tag"] == version
    assert values["replicaCount"] == 0
    assert type(values["replicaCount"]) is int


@pytest.mark.parametrize(
    "existing",
    [
        b"- a list\n",
        b"just a string\n",
        b"42\n",
        b"image: v1\n",
        b"persistence: [1]\n",
        b"env: {a: 1}\n",
        b"{a: [\n",
    ],
)
def test_a_values_file_the_portal_cannot_merge_into_is_refused(existing):
    with pytest.raises(ValuesError):
        values_render(existing=existing, **OWNED)


def test_an_empty_values_file_is_treated_as_new():
    assert _render(b"")["replicaCount"] == 3


def test_paths_and_names_follow_the_repository_layout():
    assert values_path("acme", "prod") == "clients/acme/prod/values.yaml"
    assert sealed_secret_path("acme", "prod") == "clients/acme/prod/apikey.sealed.yaml"
    assert apikey_secret_name(client="acme", cluster="prod") == "qdrant-acme-prod-apikey"
    with pytest.raises(ValuesError):
        values_path("../etc", "prod")


def test_a_file_the_portal_rendered_renders_again_from_its_own_text():
    """Each render parses the file it is given: nothing is remembered between renders."""
    hand_edited = b"replicaCount: 1\nextra:\n  nested: [1, 2.5, 'x', true, null]\nwhen: 2024-01-01\n"
    first = values_render(
        existing=hand_edited, client="c1", cluster="main", replicas=2, version="v1.15.5", storage_gi=10
    )
    second = values_render(
        existing=first, client="c1", cluster="main", replicas=3, version="v1.15.5", storage_gi=10
    )
    again = values_render(
        existing=first, client="c1", cluster="main", replicas=3, version="v1.15.5", storage_gi=10
    )

    assert second == again
    assert b"replicaCount: 3" in second
    assert b"nested:" in second
    assert yaml.safe_load(second)["extra"] == {"nested": [1, 2.5, "x", True, None]}
    assert yaml.safe_load(second)["when"] == yaml.safe_load(hand_edited)["when"]


def test_values_errors_are_content_errors_without_http_details():
    assert issubclass(ValuesError, ContentError)
    assert issubclass(ValuesError, ValueError)
    assert not hasattr(ValuesError("x"), "code")
    assert not hasattr(ValuesError("x"), "status_code")
