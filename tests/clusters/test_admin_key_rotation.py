"""The admin's "Rotate API keys": the new keys are shown after a redirect, once; a confirmation
rotates the keys it was shown for, once, however often it is sent (a reload, Back, two
operators answering the same question)."""

from __future__ import annotations

import pytest
from django.test import Client as BrowserClient

from clusters.models import Cluster, ClusterChange
from clusters.selectors import cluster_credentials
from tests.helpers import admin_action_confirmed, concurrent_writers_required, form_as_submitted, race

LIST = "/admin/clusters/cluster/"
KEYS_PAGE = "/admin/clusters/cluster/rotated-keys/"
CHANGED = "its API keys changed since you were asked"


@pytest.fixture
def one_step(cluster1) -> Cluster:
    """A cluster whose Qdrant takes one API key only: a rotation replaces its keys at once."""
    Cluster.objects.filter(pk=cluster1.pk).update(version="v1.16.3")
    return Cluster.objects.get(pk=cluster1.pk)


@pytest.fixture
def second_browser(user_factory) -> BrowserClient:
    pavel = user_factory(email="pavel@example.com", is_staff=True, is_superuser=True, is_operator=True)
    browser = BrowserClient()
    browser.force_login(pavel)
    return browser


def _rotations(cluster: Cluster) -> int:
    return ClusterChange.objects.filter(cluster=cluster, action="credentials_rotate").count()


def _question(browser: BrowserClient, cluster: Cluster) -> dict[str, list[str]]:
    """The question page's answer ("Yes, rotate their keys"), as that page sends it."""
    asked = browser.post(LIST, {"action": "rotate_credentials", "_selected_action": [str(cluster.pk)]})
    return form_as_submitted(asked.content.decode(), form_id="action-confirmation")


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_the_new_keys_are_shown_after_a_redirect_and_a_reload_rotates_nothing(admin_browser, one_step):
    rotated = admin_action_confirmed(admin_browser, LIST, "rotate_credentials", [one_step.pk])

    assert (rotated.status_code, rotated["Location"]) == (302, KEYS_PAGE)
    shown = admin_browser.get(KEYS_PAGE)
    keys = cluster_credentials(cluster=Cluster.objects.get(pk=one_step.pk))
    assert "no-store" in shown["Cache-Control"]
    assert keys.api_key in shown.content.decode() and keys.read_only_api_key in shown.content.decode()

    reloaded = admin_browser.get(KEYS_PAGE)  # the browser's reload: a GET, which changes nothing

    assert reloaded.status_code == 200 and "no-store" in reloaded["Cache-Control"]
    page = reloaded.content.decode()
    assert keys.api_key not in page and "shown once" in page
    assert _rotations(one_step) == 1
    assert cluster_credentials(cluster=Cluster.objects.get(pk=one_step.pk)) == keys


def test_the_same_confirmation_sent_again_rotates_nothing_and_says_so(admin_browser, one_step):
    """Back, then the browser's "Confirm form resubmission": the keys just copied stay."""
    answer = _question(admin_browser, one_step)
    assert admin_browser.post(LIST, answer).status_code == 302
    keys = cluster_credentials(cluster=Cluster.objects.get(pk=one_step.pk))
    admin_browser.get(KEYS_PAGE)

    again = admin_browser.post(LIST, answer, follow=True)

    [said] = _messages(again)
    assert f"Cluster {one_step}: {CHANGED}" in said and "root@example.com" in said
    assert "nothing was done" in said
    assert _rotations(one_step) == 1
    assert cluster_credentials(cluster=Cluster.objects.get(pk=one_step.pk)) == keys


def test_two_operators_answering_the_same_question_rotate_the_keys_once(
    admin_browser, second_browser, one_step
):
    olga, pavel = _question(admin_browser, one_step), _question(second_browser, one_step)
    assert admin_browser.post(LIST, olga).status_code == 302
    keys = cluster_credentials(cluster=Cluster.objects.get(pk=one_step.pk))

    refused = second_browser.post(LIST, pavel, follow=True)

    assert any(CHANGED in said for said in _messages(refused))
    assert keys.api_key not in refused.content.decode()  # the first operator's keys: not theirs to see
    assert _rotations(one_step) == 1
    assert cluster_credentials(cluster=Cluster.objects.get(pk=one_step.pk)) == keys
    assert keys.api_key in admin_browser.get(KEYS_PAGE).content.decode()


def test_an_answer_that_does_not_say_what_it_confirms_asks_again(admin_browser, one_step):
    asked = admin_browser.post(
        LIST, {"action": "rotate_credentials", "post": "yes", "_selected_action": [one_step.pk]}
    )

    assert asked.status_code == 200 and "Yes, rotate their keys" in asked.content.decode()
    assert _rotations(one_step) == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_operators_confirming_at_the_same_moment_rotate_the_keys_once(
    admin_browser, second_browser, one_step
):
    concurrent_writers_required()
    for attempt in range(3):
        olga, pavel = _question(admin_browser, one_step), _question(second_browser, one_step)

        answered = race(
            lambda olga=olga: admin_browser.post(LIST, olga),
            lambda pavel=pavel: second_browser.post(LIST, pavel),
        )

        assert _rotations(one_step) == attempt + 1
        to_keys = [response for response in answered if response.get("Location") == KEYS_PAGE]
        assert len(to_keys) == 1, [response.get("Location") for response in answered]
