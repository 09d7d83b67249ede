"""Rotated keys take effect: the pod template changes, and where Qdrant allows it no key is refused.

Pods read their keys from the Secret only when they start, so every rotation must change the
pod template (a fingerprint annotation, never a key). From Qdrant v1.17.0 the new key first
comes as the alternate key (QDRANT__SERVICE__ALT_API_KEY), next to the old one.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import time_machine
import yaml
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from clusters.models import ClientAuditEvent, Cluster, ClusterChange
from clusters.rendering import keys_fingerprint
from gitops.argocd import repository_readme_render
from gitops.repository import (
    GitIdentity,
    GitopsRepository,
    blobs_read,
    branch_tip,
    file_read,
    files_commit,
)
from gitops.values import KEYS_FINGERPRINT_ANNOTATION
from tests.conftest import DEFAULT_PASSWORD, b64, portal_repository
from tests.helpers import admin_action_confirmed

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/clients/client1/clusters/main"
VALUES = "clients/client1/main/values.yaml"
SEALED = "clients/client1/main/apikey.sealed.yaml"
ALT_ENTRY = {
    "name": "QDRANT__SERVICE__ALT_API_KEY",
    "valueFrom": {
        "secretKeyRef": {"name": "qdrant-client1-main-apikey", "key": "alt-api-key", "optional": True}
    },
}


def _values(repository: GitopsRepository) -> dict:
    return yaml.safe_load(file_read(repository=repository, file_path=VALUES))


def _fingerprint(repository: GitopsRepository) -> str | None:
    return (_values(repository).get("podAnnotations") or {}).get(KEYS_FINGERPRINT_ANNOTATION)


def _env_names(repository: GitopsRepository) -> list[str]:
    return [entry["name"] for entry in _values(repository)["env"]]


def _no_key_in_any_blob(keys: list[str], *repositories: GitopsRepository) -> None:
    for repository in repositories:
        for blob in blobs_read(repository=repository):
            assert not any(key.encode() in blob for key in keys)


def _on(cluster: Cluster, version: str) -> None:
    Cluster.objects.filter(pk=cluster.pk).update(version=version)


def test_two_phase_rotation_adds_the_new_key_as_the_alternate_and_rolls_the_pods(
    git_server, settings, as_user1, cluster1
):
    old = as_user1.get(f"{URL}/credentials").json()
    fingerprint_before = _fingerprint(git_server)
    assert fingerprint_before  # new clusters carry it from the start

    response = as_user1.post(f"{URL}/credentials/rotate")

    assert response.status_code == 200
    new = response.json()
    assert new["rotationMode"] == "two_phase"
    assert new["apiKey"] != old["apiKey"] and new["readOnlyApiKey"] != old["readOnlyApiKey"]
    rotation = new["rotation"]
    assert rotation["phase"] == "alternate_key_active"
    started, finishes = parse_datetime(rotation["startedAt"]), parse_datetime(rotation["finishesAt"])
    assert finishes - started == settings.KEY_ROTATION_GRACE == timedelta(hours=24)
    assert as_user1.get(f"{URL}/credentials").json() == new  # what clients should use now
    assert as_user1.get(URL).json()["rotation"] == rotation

    assert _values(git_server)["env"][-1] == ALT_ENTRY
    assert _fingerprint(git_server) not in (None, fingerprint_before)
    _no_key_in_any_blob(
        [old["apiKey"], old["readOnlyApiKey"], new["apiKey"], new["readOnlyApiKey"]],
        git_server,
        portal_repository(settings),
    )
    change = ClusterChange.objects.get(action="credentials_rotate")
    assert change.pushed and change.changes == {"credentials": ["old key", "old and new keys"]}


def test_finishing_makes_the_new_key_the_only_one_and_rolls_the_pods_again(git_server, as_user1, cluster1):
    new = as_user1.post(f"{URL}/credentials/rotate").json()
    during = _fingerprint(git_server)

    response = as_user1.post(f"{URL}/credentials/rotate/finish")

    assert response.status_code == 200
    body = response.json()
    assert (body["apiKey"], body["readOnlyApiKey"], body["rotation"]) == (
        new["apiKey"],
        new["readOnlyApiKey"],
        None,
    )
    assert "QDRANT__SERVICE__ALT_API_KEY" not in _env_names(git_server)
    assert _fingerprint(git_server) != during
    cluster = Cluster.objects.get(pk=cluster1.pk)
    assert (cluster.alt_api_key_encrypted, cluster.rotation_started_at) == ("", None)
    entry = as_user1.get(f"{URL}/history").json()[0]
    assert (entry["action"], entry["author"]) == ("credentials_rotate_finish", "client1@example.com")


def _accepted_keys(repository: GitopsRepository, secret: dict[str, str]) -> set[str]:
    """The API keys Qdrant takes from the values' env entries and the Secret they read."""
    env = {entry["name"]: entry["valueFrom"]["secretKeyRef"]["key"] for entry in _values(repository)["env"]}
    names = ("QDRANT__SERVICE__API_KEY", "QDRANT__SERVICE__ALT_API_KEY")
    return {secret[env[name]] for name in names if name in env and env[name] in secret}


def _readme_rotation_steps(readme: str):
    """The GitOps README's two Secret updates, as functions of the Secret (a dict)."""
    [merge] = re.findall(r"--type merge -p \\\n\s+\"(.+)\"\n", readme)
    [removal] = re.findall(r"--type json \\\n\s+-p '(.+)'\n", readme)
    assert 'if [ "$OLD_KEY" != "$NEW_KEY" ]' in readme  # a second run changes nothing

    def rotation_started(secret: dict, new: dict) -> None:
        if secret["api-key"] == new["apiKey"]:
            return
        patch = (
            merge.replace('\\"', '"')
            .replace("$OLD_KEY", secret["api-key"])
            .replace("$NEW_KEY", new["apiKey"])
        )
        secret |= json.loads(patch.replace("<new read-only api key>", new["readOnlyApiKey"]))["stringData"]

    def rotation_finished(secret: dict) -> None:
        for operation in json.loads(removal):
            assert operation["op"] == "remove"
            secret.pop(operation["path"].removeprefix("/data/"))

    return rotation_started, rotation_finished


def test_a_hand_made_secret_updated_as_the_gitops_readme_says_serves_the_shown_key_and_no_retired_one(
    git_server, as_user1, cluster1
):
    """Without sealed-secrets an operator updates the Secret when a rotation starts; the finish
    (the portal's own, after the grace period, at any hour) must then need nothing from them,
    and a retired key must never be accepted again."""
    rotation_started, rotation_finished = _readme_rotation_steps(repository_readme_render().decode())
    first = as_user1.get(f"{URL}/credentials").json()
    secret = {"api-key": first["apiKey"], "read-only-api-key": first["readOnlyApiKey"]}

    second = as_user1.post(f"{URL}/credentials/rotate").json()
    rotation_started(secret, second)
    rotation_started(secret, second)  # run twice by mistake: the same
    assert _accepted_keys(git_server, secret) == {first["apiKey"], second["apiKey"]}  # nobody refused
    assert as_user1.post(f"{URL}/credentials/rotate/finish").status_code == 200
    assert _accepted_keys(git_server, secret) == {second["apiKey"]}  # the key the portal shows

    rotation_finished(secret)
    third = as_user1.post(f"{URL}/credentials/rotate").json()
    # The next start rolls the pods before the operator updates the Secret: the retired key stays out.
    assert _accepted_keys(git_server, secret) == {second["apiKey"]}
    rotation_started(secret, third)
    assert _accepted_keys(git_server, secret) == {second["apiKey"], third["apiKey"]}


def test_one_rotation_at_a_time_and_nothing_to_finish_without_one(as_user1, cluster1):
    assert as_user1.post(f"{URL}/credentials/rotate/finish").json()["code"] == "no_rotation_in_progress"
    keys = as_user1.post(f"{URL}/credentials/rotate").json()

    again = as_user1.post(f"{URL}/credentials/rotate")

    assert again.status_code == 409
    assert again.json()["code"] == "rotation_in_progress"
    assert as_user1.get(f"{URL}/credentials").json()["apiKey"] == keys["apiKey"]
    assert ClusterChange.objects.filter(action="credentials_rotate").count() == 1


def test_older_versions_rotate_in_one_step_and_still_roll_the_pods(git_server, settings, as_user1, cluster1):
    _on(cluster1, "v1.16.3")
    before = _fingerprint(git_server)

    response = as_user1.post(f"{URL}/credentials/rotate")

    body = response.json()
    assert (body["rotationMode"], body["rotation"]) == ("one_step", None)
    assert as_user1.get(URL).json()["rotationMode"] == "one_step"
    assert "QDRANT__SERVICE__ALT_API_KEY" not in _env_names(git_server)
    assert _fingerprint(git_server) not in (None, before)
    _no_key_in_any_blob([body["apiKey"], body["readOnlyApiKey"]], git_server, portal_repository(settings))
    assert as_user1.post(f"{URL}/credentials/rotate").status_code == 200  # no phase to wait for


def test_the_fingerprint_is_a_keyed_hash_of_the_keys(git_server, cluster1):
    from clusters.rendering import ClusterKeys

    keys = ClusterKeys.of(Cluster.objects.get(pk=cluster1.pk))
    assert _fingerprint(git_server) == keys_fingerprint(
        api_key=keys.api_key, read_only_api_key=keys.read_only_api_key
    )
    assert keys_fingerprint(api_key="a", read_only_api_key="b", alt_api_key="c") != keys_fingerprint(
        api_key="a", read_only_api_key="b"
    )


def test_gitops_sync_finishes_a_rotation_once_its_grace_period_is_over(
    git_server, as_user1, cluster1, capsys
):
    new = as_user1.post(f"{URL}/credentials/rotate").json()

    call_command("gitops_sync")
    assert Cluster.objects.get(pk=cluster1.pk).rotation_in_progress  # still within the grace period

    with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
        call_command("gitops_sync")

    assert "Key rotation of client1/main finished after its grace period." in capsys.readouterr().out
    assert as_user1.get(f"{URL}/credentials").json()["apiKey"] == new["apiKey"]
    assert as_user1.get(URL).json()["rotation"] is None
    assert "QDRANT__SERVICE__ALT_API_KEY" not in _env_names(git_server)
    change = ClusterChange.objects.get(action="credentials_rotate_finish")
    assert change.pushed and change.actor is None
    assert (
        change.message
        == "client1/main: API key rotation finished after the grace period, the old key is removed"
    )


@pytest.mark.parametrize("step", ["rotate", "rotate/finish"])
def test_keys_that_cannot_even_be_committed_are_not_handed_out(tmp_path, settings, as_user1, cluster1, step):
    if step == "rotate/finish":
        assert as_user1.post(f"{URL}/credentials/rotate").status_code == 200
    before = as_user1.get(f"{URL}/credentials").json()
    history = as_user1.get(f"{URL}/history").json()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the repository should be")
    settings.GITOPS_REPO_PATH = blocker / "gitops.git"
    reveals = ClientAuditEvent.objects.filter(type=ClientAuditEvent.Type.CREDENTIALS_REVEALED).count()

    response = as_user1.post(f"{URL}/credentials/{step}")

    assert (response.status_code, response.json()["code"]) == (503, "gitops_unavailable")
    # Nobody was given keys: the client's trail says nobody was.
    assert ClientAuditEvent.objects.filter(type=ClientAuditEvent.Type.CREDENTIALS_REVEALED).count() == reveals
    assert as_user1.get(f"{URL}/credentials").json() == before  # the keys the cluster runs with
    assert as_user1.get(f"{URL}/history").json() == history


def test_keys_committed_but_not_pushed_are_answered_202(tmp_path, settings, as_user1, cluster1):
    settings.GITOPS_REMOTE_URL = str(tmp_path / "unreachable.git")
    response = as_user1.post(f"{URL}/credentials/rotate")
    assert response.status_code == 202  # accepted, not on the cluster yet
    assert as_user1.get(f"{URL}/credentials").json() == response.json()
    assert not ClusterChange.objects.get(action="credentials_rotate").pushed


def test_a_rotation_whose_start_never_reached_the_remote_is_not_finished_behind_clients_backs(
    tmp_path, settings, as_user1, cluster1
):
    settings.GITOPS_REMOTE_URL = str(tmp_path / "unreachable.git")
    assert as_user1.post(f"{URL}/credentials/rotate").status_code == 202
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        with pytest.raises(CommandError, match="not pushed"):
            call_command("gitops_sync")  # the remote is still unreachable
    assert Cluster.objects.get(pk=cluster1.pk).rotation_in_progress


def test_the_sealed_secret_carries_the_alternate_key_during_a_rotation(
    git_server,
    sealing_certificate,
    client1,
    user1,
    client_for,
):
    from clusters.services import cluster_create

    cluster_create(client=client1, slug="sealed", actor=user1)
    api = client_for(user1)
    path = "clients/client1/sealed/apikey.sealed.yaml"

    api.post("/api/clients/client1/clusters/sealed/credentials/rotate")
    during = yaml.safe_load(file_read(repository=git_server, file_path=path))
    api.post("/api/clients/client1/clusters/sealed/credentials/rotate/finish")
    after = yaml.safe_load(file_read(repository=git_server, file_path=path))

    assert set(during["spec"]["encryptedData"]) == {"api-key", "read-only-api-key", "alt-api-key"}
    assert set(after["spec"]["encryptedData"]) == {"api-key", "read-only-api-key"}
    for manifest in (during, after):
        # Argo CD applies it before the chart and waits until the controller updated the Secret.
        assert manifest["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"


def test_a_values_file_without_the_fingerprint_gets_it_at_the_next_rotation_not_before(
    git_server, settings, as_user1, cluster1
):
    """Upgrading the portal must not restart every cluster: only a key change adds the annotation."""
    local = portal_repository(settings)
    old_style = _values(local)
    del old_style["podAnnotations"]
    files_commit(
        repository=local,
        changes={VALUES: yaml.safe_dump(old_style).encode()},
        author=GitIdentity("Ops", "ops@example.com"),
        committer=GitIdentity("Ops", "ops@example.com"),
        message="written by an older portal",
        expected_tip=branch_tip(repository=local),
    )

    as_user1.patch(URL, {"replicas": 3}, format="json")
    call_command("gitops_sync")
    assert _fingerprint(git_server) is None

    as_user1.post(f"{URL}/credentials/rotate")
    assert _fingerprint(git_server) is not None


def test_operators_finish_a_rotation_from_the_admin(client, user_factory, as_user1, cluster1):
    operator = user_factory(email="root@example.com", is_staff=True, is_superuser=True, is_operator=True)
    client.force_login(operator)
    as_user1.post(f"{URL}/credentials/rotate")
    page = client.get(f"/admin/clusters/cluster/{cluster1.pk}/change/").content.decode()
    assert "A rotation is in progress" in page

    selection = {"action": "finish_key_rotation", "_selected_action": [cluster1.pk]}
    asked = client.post("/admin/clusters/cluster/", selection).content.decode()
    assert "old API key is removed for good" in asked  # asks first: nothing finished yet
    assert Cluster.objects.get(pk=cluster1.pk).rotation_in_progress

    response = client.post("/admin/clusters/cluster/", {**selection, "post": "yes"})

    assert response.status_code == 302
    assert not Cluster.objects.get(pk=cluster1.pk).rotation_in_progress
    again = admin_action_confirmed(
        client, "/admin/clusters/cluster/", "rotate_credentials", [cluster1.pk], follow=True
    )
    assert "The old API key still works until" in again.content.decode()
    refused = admin_action_confirmed(
        client, "/admin/clusters/cluster/", "rotate_credentials", [cluster1.pk], follow=True
    )
    assert "A key rotation of this cluster is in progress" in refused.content.decode()


def test_a_rotation_from_the_admin_the_remote_did_not_take_says_so_beside_the_new_keys(
    client, user_factory, cluster1, settings, tmp_path
):
    """The grace period runs from now, while Argo CD cannot deploy the keys: the operator must know."""
    operator = user_factory(email="root@example.com", is_staff=True, is_superuser=True, is_operator=True)
    client.force_login(operator)
    settings.GITOPS_REMOTE_URL = str(tmp_path / "gone.git")
    page = admin_action_confirmed(
        client, "/admin/clusters/cluster/", "rotate_credentials", [cluster1.pk], follow=True
    )
    shown = [(message.level_tag, str(message)) for message in page.context["messages"]]
    assert shown == [("warning", shown[0][1])] and "not pushed yet" in shown[0][1]
    assert re.search(
        r"The old API key still works until \w+\.? \d+, \d{4}, \d\d:\d\d UTC", page.content.decode()
    )


def test_finishing_a_rotation_the_remote_did_not_take_warns_the_operator(
    client, user_factory, as_user1, cluster1, settings, tmp_path
):
    """The old key keeps working until the change is pushed: "removed" alone would be untrue."""
    operator = user_factory(email="root@example.com", is_staff=True, is_superuser=True, is_operator=True)
    client.force_login(operator)
    as_user1.post(f"{URL}/credentials/rotate")
    settings.GITOPS_REMOTE_URL = str(tmp_path / "gone.git")

    response = client.post(
        "/admin/clusters/cluster/",
        {"action": "finish_key_rotation", "_selected_action": [cluster1.pk], "post": "yes"},
        follow=True,
    )

    shown = [(message.level_tag, str(message)) for message in response.context["messages"]]
    assert [level for level, _ in shown] == ["warning"]
    assert "the old API key is removed" in shown[0][1] and "not pushed yet" in shown[0][1]
    # Django's admin capitalises a message's first letter: it must not turn the slug into "Client1".
    assert "Cluster client1/main: key rotation finished" in response.content.decode()


def test_rotating_keys_needs_a_recent_authentication(git_server, as_user1, cluster1):
    def keys() -> tuple[str, str, str]:
        cluster = Cluster.objects.get(pk=cluster1.pk)
        return (cluster.api_key_encrypted, cluster.alt_api_key_encrypted, cluster.read_only_api_key_encrypted)

    before = keys()
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        traveller.shift(timedelta(minutes=6))
        refused = as_user1.post(f"{URL}/credentials/rotate")
        assert (refused.status_code, refused.json()["code"]) == (403, "reauthentication_required")
        assert keys() == before
        assert ClusterChange.objects.filter(cluster=cluster1).count() == 1  # only its creation

        proven = as_user1.post("/api/auth/reauthenticate", {"password": b64(DEFAULT_PASSWORD)}, format="json")
        assert proven.status_code == 204
        assert as_user1.post(f"{URL}/credentials/rotate").status_code == 200
    assert keys() != before


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("migrated_back_afterwards")
def test_rotations_recorded_before_the_history_had_pairs_read_as_pairs(client1, cluster1):
    """The history API promises {"field": [before, after]}: older rows are brought to it."""
    # The models as they were then: today's has columns those migrations do not know yet.
    then = MigrationExecutor(connection).migrate([("clusters", "0005_teams_and_sign_in_policy")])
    for words in ("rotated", "rotation started", "rotation finished"):
        then.apps.get_model("clusters", "ClusterChange").objects.create(
            cluster_id=cluster1.pk, action="credentials_rotate", changes={"credentials": words}, message=words
        )
    executor = MigrationExecutor(connection)  # a new one: it reads which migrations have run
    after = executor.migrate([("clusters", "0006_history_credentials_pairs")])

    changes = after.apps.get_model("clusters", "ClusterChange").objects.filter(action="credentials_rotate")
    recorded = {c.message: c.changes for c in changes}

    assert recorded == {
        "rotated": {"credentials": ["old key", "new key"]},
        "rotation started": {"credentials": ["old key", "old and new keys"]},
        "rotation finished": {"credentials": ["old and new keys", "new key"]},
    }
