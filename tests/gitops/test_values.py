from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gitops.errors import ContentError
from gitops.values import (
    HEADER,
    KEYS_FINGERPRINT_ANNOTATION,
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


@pytest.mark.parametrize(
    ("held", "replacing", "refused"),
    [
        (b"replicaCount: 2\n", {"replicas": 2}, None),  # what the change replaces
        (b"replicaCount: 3\n", {"replicas": 2}, None),  # what it sets, already
        (b"replicaCount: 5\n", {"replicas": 2}, "replicaCount is 5 in git where the portal has 2"),
        (b"persistence: {size: 10Gi}\n", {"storage_gi": 10}, None),
        (
            b"persistence: {size: 15Gi}\n",
            {"storage_gi": 10},
            "persistence.size is 15Gi in git where the portal has 10Gi",
        ),
        (
            b"image: {tag: v1.16.0}\n",
            {"version": "v1.15.0"},
            "image.tag is v1.16.0 in git where the portal has v1.15.0",
        ),
        (b"replicaCount: 5\n", {"version": "v1.15.0"}, None),  # a value the change leaves alone
        (b"replicaCount: 5\n", {"replicas": None}, None),  # a new cluster replaces nothing
        (b"image: {pullPolicy: Always}\n", {"version": "v1.15.0"}, None),  # nor does a missing key
    ],
)
def test_a_change_renders_only_over_the_values_it_replaces(held, replacing, refused):
    if refused is None:
        assert _render(held, replacing=replacing)["replicaCount"] == 3
        return
    with pytest.raises(ValuesError, match=refused):
        values_render(existing=held, **OWNED, replacing=replacing)


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


# --- Key rotation: the alternate key and the pod template's fingerprint -------------------------

FINGERPRINT = "ab" * 32


def test_during_a_rotation_the_alternate_key_comes_from_the_secret_and_may_be_missing():
    values = _render(alt_api_key=True)
    assert values["env"] == [
        *API_KEY_ENTRIES,
        {
            "name": "QDRANT__SERVICE__ALT_API_KEY",
            "valueFrom": {
                "secretKeyRef": {"name": "qdrant-acme-prod-apikey", "key": "alt-api-key", "optional": True}
            },
        },
    ]
    after = yaml.safe_load(
        values_render(existing=values_render(existing=None, **OWNED, alt_api_key=True), **OWNED)
    )
    assert after["env"] == API_KEY_ENTRIES  # the rotation finished: the entry goes


def test_the_keys_fingerprint_goes_on_the_pod_template_next_to_other_annotations():
    existing = b"podAnnotations:\n  prometheus.io/scrape: 'true'\n"
    values = _render(existing, keys_fingerprint=FINGERPRINT)
    assert values["podAnnotations"] == {
        "prometheus.io/scrape": "true",
        KEYS_FINGERPRINT_ANNOTATION: FINGERPRINT,
    }


def test_a_file_without_the_fingerprint_gets_it_only_when_asked_or_when_new():
    without = values_render(existing=None, **OWNED)
    assert "podAnnotations" not in _render(without, keys_fingerprint=FINGERPRINT, keys_fingerprint_add=False)
    assert _render(None, keys_fingerprint=FINGERPRINT, keys_fingerprint_add=False)["podAnnotations"]
    assert _render(without, keys_fingerprint=FINGERPRINT)["podAnnotations"]
    with_it = values_render(existing=None, **OWNED, keys_fingerprint=FINGERPRINT)
    updated = _render(with_it, keys_fingerprint="cd" * 32, keys_fingerprint_add=False)
    assert updated["podAnnotations"][KEYS_FINGERPRINT_ANNOTATION] == "cd" * 32


@pytest.mark.parametrize("fingerprint", ["", "not hex", "ab\nreplicaCount: 9", "AB" * 32, 42])
def test_a_fingerprint_that_is_not_a_hex_digest_is_refused(fingerprint):
    with pytest.raises(ValuesError):
        values_render(existing=None, **OWNED, keys_fingerprint=fingerprint)


def test_pod_annotations_that_are_not_a_mapping_are_a_conflict():
    with pytest.raises(ValuesError):
        values_render(existing=b"podAnnotations: [a]\n", **OWNED, keys_fingerprint=FINGERPRINT)


# --- The chart's own values: every key the portal writes exists there, with a compatible type ----

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"


def _chart_defaults() -> dict:
    path = REFERENCE / "qdrant-chart" / "values.yaml"
    if not path.exists():
        pytest.skip(f"{path} is absent: the chart's reference values come with ../shared/reference")
    return yaml.safe_load(path.read_text())


def _written_paths(data: dict, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """Every key path the portal writes, down to a value that is not a mapping."""
    paths: dict[tuple[str, ...], object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            paths.update(_written_paths(value, (*prefix, key)))
        else:
            paths[(*prefix, key)] = value
    return paths


def test_every_key_the_portal_writes_exists_in_the_chart_with_a_compatible_type():
    chart = _chart_defaults()
    written = _written_paths(
        yaml.safe_load(values_render(existing=None, **OWNED, alt_api_key=True, keys_fingerprint=FINGERPRINT))
    )
    assert {path: type(value) for path, value in written.items()} == {
        ("replicaCount",): int,
        ("image", "tag"): str,
        ("persistence", "size"): str,
        ("env",): list,
        ("podAnnotations", KEYS_FINGERPRINT_ANNOTATION): str,
    }
    for path, value in written.items():
        node = chart
        for depth, key in enumerate(path):
            if node == {} and depth:  # a free-form map in the chart (podAnnotations: {})
                assert isinstance(value, str), f"{'.'.join(path)}: annotations are strings"
                break
            assert isinstance(node, dict) and key in node, f"the chart has no {'.'.join(path[: depth + 1])}"
            node = node[key]
        else:
            assert type(value) is type(node), (
                f"{'.'.join(path)}: {type(value)} where the chart has {type(node)}"
            )
    assert chart["podAnnotations"] == {} and chart["env"] == []


def test_the_chart_reads_the_keys_from_no_values_of_its_own():
    """The chart's apiKey/readOnlyApiKey would need Helm lookup, which Argo CD does not run: unused."""
    chart = _chart_defaults()
    written = values_render(existing=None, **OWNED, alt_api_key=True, keys_fingerprint=FINGERPRINT)
    assert "apiKey" not in chart and "readOnlyApiKey" not in chart  # commented out in the chart
    assert b"apiKey:" not in written and b"readOnlyApiKey:" not in written


@pytest.mark.parametrize("option", ["apiKey", "readOnlyApiKey"])
@pytest.mark.parametrize("value", ["a-key-in-plaintext", True])
def test_the_charts_own_key_options_written_by_hand_are_dropped(option, value):
    """A plaintext key (or one the chart would generate) in a Secret named like the portal's."""
    existing = yaml.safe_dump({option: value, "service": {"type": "ClusterIP"}}).encode()
    written = values_render(existing=existing, **OWNED)
    assert option not in yaml.safe_load(written) and b"a-key-in-plaintext" not in written
    assert yaml.safe_load(written)["service"] == {"type": "ClusterIP"}  # the rest stays
