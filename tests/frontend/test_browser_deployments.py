"""The deployment card end to end in headless Chromium: scale, then watch Argo CD (a fake on
loopback, tests/support/fake_argocd.py) take the change to the cluster, or fail to.

Also what a new user stumbled on: where the save confirmation appears and when it goes, an
error replacing a stale success, commit ids that wrap, the header on a phone, session cards.
Each deployment state is saved as a screenshot (docs/screenshots/cluster-deployment-*.png).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client as DjangoClient
from playwright.sync_api import expect

from clusters.models import ClusterChange
from tests.conftest import b64
from tests.frontend.conftest import PASSWORD, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CLUSTER_PAGE = "/#/clients/client1/clusters/main"
CLUSTER_API = "/api/clients/client1/clusters/main"
SLOW = 25_000  # ms: the page polls every 2, 3, 5... seconds and statuses are cached a second
# pages/cluster-deployment.js's POLL_DELAYS_MS: the first and the longest delay between polls.
FIRST_POLL_MS, LONGEST_POLL_MS = 2_000, 30_000


@pytest.fixture
def quick_argocd(argocd, settings):
    settings.ARGOCD_CACHE_TTL = timedelta(seconds=1)
    return argocd


def _cached_status_expired(application: str, timeout: float = 5.0) -> None:
    """Waits until the portal no longer holds Argo CD's answer about ``application``."""
    deadline = time.monotonic() + timeout
    while cache.get(f"argocd:application:{application}") is not None:
        assert time.monotonic() < deadline, f"the cached status of {application} never expired"
        time.sleep(0.05)


def _steps(page) -> dict[str, str]:
    return page.eval_on_selector_all(
        "#deployment-steps [data-step]",
        "items => Object.fromEntries(items.map(i => [i.dataset.step, i.dataset.status]))",
    )


def _state(page, state: str, timeout: int = SLOW) -> None:
    page.wait_for_selector(f'#deployment-state[data-state="{state}"]', timeout=timeout)


def _polls_say_nothing_new(page) -> None:
    """Polls that find the same state leave the live region alone: a screen reader would read
    the same words out again at every poll."""
    polls = []
    page.on("request", lambda request: polls.append(request) if request.url.endswith(CLUSTER_API) else None)
    page.eval_on_selector(
        "#deployment-message",
        """region => { window.deploymentSaid = 0;
            new MutationObserver(() => window.deploymentSaid++).observe(region, {childList: true, characterData: true, subtree: true}); }""",
    )
    deadline = time.monotonic() + 10
    while len(polls) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    page.wait_for_timeout(300)  # the last answer rendered
    assert len(polls) >= 2 and page.get_attribute("#deployment-state", "data-state") == "pending"
    assert page.eval_on_selector("#deployment-message", "() => window.deploymentSaid") == 0


def test_a_scale_is_followed_to_deployed_and_a_failure_says_what_went_wrong(
    live_server, new_page, page_problems, screenshot, quick_argocd, git_server, user1, cluster1
):
    argocd = quick_argocd
    created = ClusterChange.objects.get(cluster=cluster1, action="create").commit
    argocd.application_put(client="client1", cluster="main", revision=created)
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    assert page.get_attribute('[data-testid="cluster-row"] .cluster-deployment', "data-state") == "deployed"
    page.goto(live_server.url + CLUSTER_PAGE)
    _state(page, "deployed")

    # Scale: committed by the user, pushed, and Argo CD has not seen it yet.
    page.fill("#replicas", "3")
    page.click("#save-replicas")
    page.wait_for_selector("#revision-commit[data-commit]")
    commit = page.get_attribute("#revision-commit", "data-commit")
    _state(page, "pending")
    assert _steps(page) == {"committed": "done", "pushed": "done", "synced": "current", "healthy": "todo"}
    assert "by client1@example.com" in page.text_content('[data-step="committed"]')
    assert quick_argocd.wait_for_refresh("qdrant.client1.main")
    screenshot(page, "cluster-deployment-pending")
    _polls_say_nothing_new(page)

    # Argo CD picks it up and applies it: the steps advance without a reload.
    argocd.application_put(
        client="client1", cluster="main", revision=commit, sync="OutOfSync", operation="Running"
    )
    _state(page, "syncing")
    assert _steps(page)["synced"] == "current"
    argocd.application_put(
        client="client1",
        cluster="main",
        revision=commit,
        health="Progressing",
        health_message="Waiting for 3 pods",
    )
    page.wait_for_selector("#deployment-message:has-text('Waiting for 3 pods')", timeout=SLOW)
    assert _steps(page) == {"committed": "done", "pushed": "done", "synced": "done", "healthy": "current"}
    screenshot(page, "cluster-deployment-syncing")
    argocd.application_put(client="client1", cluster="main", revision=commit)
    _state(page, "deployed")
    assert _steps(page) == {"committed": "done", "pushed": "done", "synced": "done", "healthy": "done"}
    screenshot(page, "cluster-deployment-deployed")
    assert page.is_visible("#deployment-check")  # final: no more polling, a button to ask again

    # The next change is refused by Kubernetes: the page says so in plain words.
    page.fill("#replicas", "4")
    page.click("#save-replicas")
    page.wait_for_selector("#revision-message:has-text('replicas 3 -> 4')")
    newer = page.get_attribute("#revision-commit", "data-commit")
    _state(page, "pending")
    refusal = (
        'StatefulSet.apps "qdrant-client1-main" is invalid: spec: Forbidden: updates to statefulset spec'
    )
    argocd.application_put(
        client="client1",
        cluster="main",
        revision=newer,
        sync="OutOfSync",
        operation="Failed",
        operation_message=refusal,
    )
    _state(page, "failed")
    message = page.text_content("#deployment-message")
    assert message.startswith("Argo CD could not apply this change.") and refusal in message
    assert page.get_attribute("#deployment-message", "role") == "status"
    assert _steps(page)["synced"] == "failed"
    # Not by colour alone: the failed step is marked otherwise than the done ones.
    marks = page.eval_on_selector_all(
        "#deployment-steps .step-marker", "marks => marks.map(m => m.textContent)"
    )
    assert marks == ["✓", "✓", "✕", ""]
    screenshot(page, "cluster-deployment-failed")
    assert page_problems == []


def test_degraded_and_unknown_are_explained_and_checked_again_on_demand(
    live_server, new_page, page_problems, screenshot, quick_argocd, settings, git_server, user1, cluster1
):
    commit = ClusterChange.objects.get(cluster=cluster1, action="create").commit
    quick_argocd.application_put(
        client="client1",
        cluster="main",
        revision=commit,
        health="Degraded",
        health_message="qdrant-client1-main-1: CrashLoopBackOff (OOMKilled)",
    )
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + CLUSTER_PAGE)
    _state(page, "degraded")
    assert "not healthy" in page.text_content("#deployment-message")
    assert "OOMKilled" in page.text_content("#deployment-message")
    assert _steps(page)["healthy"] == "failed"
    screenshot(page, "cluster-deployment-degraded")

    quick_argocd.answer_status = 401  # the portal's Argo CD token was revoked
    _cached_status_expired("qdrant.client1.main")
    page.click("#deployment-check")
    _state(page, "unknown")
    assert "refused the portal's token" in page.text_content("#deployment-message")
    screenshot(page, "cluster-deployment-unknown")
    assert page_problems == []


def _page_hidden(page, hidden: bool) -> None:
    """As when the user switches to another tab (or back): ``document.hidden`` changes."""
    page.evaluate(
        """hidden => {
            Object.defineProperty(document, "hidden", {value: hidden, configurable: true});
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


def _questions_after(page, questions: list[str], ms: int) -> int:
    """How many questions the page has asked once ``ms`` of its time has passed (its timers run
    at once). Requests are reported in the order they start: one made now comes after them all."""
    page.clock.run_for(ms)
    with page.expect_request("**/api/auth/csrf"):
        page.evaluate("fetch('/api/auth/csrf')")
    return len(questions)


def test_polling_stops_while_the_page_is_hidden_and_when_the_user_leaves(
    live_server, new_page, page_problems, quick_argocd, git_server, user1, cluster1
):
    commit = ClusterChange.objects.get(cluster=cluster1, action="create").commit
    quick_argocd.application_put(client="client1", cluster="main", revision=commit, operation="Running")
    page = new_page()
    page.clock.install()  # time flows, and a test can skip ahead: every poll's delay passes at once
    cluster_url = f"{live_server.url}/api/clients/client1/clusters/main"
    questions: list[str] = []
    page.on("request", lambda request: request.url == cluster_url and questions.append(request.url))
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + CLUSTER_PAGE)
    _state(page, "syncing")
    asked = _questions_after(page, questions, 0)
    assert _questions_after(page, questions, LONGEST_POLL_MS) > asked, "a syncing page polls"

    _page_hidden(page, True)
    asked = len(questions)
    assert _questions_after(page, questions, 10 * LONGEST_POLL_MS) == asked, "a hidden page does not poll"

    with page.expect_request(cluster_url, timeout=FIRST_POLL_MS * 0.75):
        _page_hidden(page, False)  # "a page shown again asks at once": before any poll would be due

    page.goto(live_server.url + "/#/sessions")
    page.wait_for_selector('[data-testid="session-row"]')
    asked = len(questions)
    assert _questions_after(page, questions, 10 * LONGEST_POLL_MS) == asked, (
        "another page does not poll the cluster"
    )
    assert page_problems == []


def test_the_clusters_list_follows_a_change_to_deployed_without_a_reload(
    live_server, new_page, page_problems, quick_argocd, git_server, user1, cluster1
):
    from clusters.services import cluster_update

    created = ClusterChange.objects.get(cluster=cluster1, action="create").commit
    quick_argocd.application_put(client="client1", cluster="main", revision=created)
    commit = cluster_update(cluster=cluster1, actor=user1, replicas=3).change.commit
    page = new_page()
    list_url = f"{live_server.url}/api/clients/client1/clusters"
    asked: list[str] = []
    page.on("request", lambda request: request.url == list_url and asked.append(request.url))
    sign_in(page, live_server.url, "client1@example.com")
    deployment = page.locator('[data-testid="cluster-row"] .cluster-deployment')
    expect(deployment).to_have_attribute("data-state", "pending")

    quick_argocd.application_put(client="client1", cluster="main", revision=commit)
    expect(deployment).to_have_attribute("data-state", "deployed", timeout=SLOW)
    polls = len(asked)
    page.wait_for_timeout(FIRST_POLL_MS * 2)
    assert len(asked) == polls, "a list with nothing on its way asks no more"
    assert page_problems == []


# --- What a new user found ----------------------------------------------------------------------


def test_the_save_confirmation_sits_by_its_button_and_goes_with_the_next_action(
    live_server, new_page, page_problems, git_server, user1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + CLUSTER_PAGE)
    page.wait_for_selector("#scale-form")

    page.fill("#replicas", "3")
    page.click("#save-replicas")
    page.wait_for_selector("#save-status:has-text('Saved.')")
    # Right below the form that saved, not at the bottom of the card.
    assert page.evaluate("document.querySelector('#scale-form').nextElementSibling.id") == "save-feedback"
    button = page.locator("#save-replicas").bounding_box()
    status = page.locator("#save-status").bounding_box()
    assert 0 <= status["y"] - (button["y"] + button["height"]) < 120

    page.fill("#replicas", "5")  # the next action
    assert page.text_content("#save-status") == ""
    assert page.is_hidden("#revision")

    page.fill("#storage-gi", "20")
    page.click("#save-storage")
    page.wait_for_selector("#save-status:has-text('requested, waiting for an operator')")
    assert page.evaluate("document.querySelector('#storage-form').nextElementSibling.id") == "save-feedback"
    assert page_problems == []


def test_an_error_replaces_the_last_success(
    live_server, new_page, page_problems, git_server, user1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + CLUSTER_PAGE)
    page.fill("#replicas", "3")
    page.click("#save-replicas")
    page.wait_for_selector("#save-status:has-text('Saved.')")
    assert page.is_visible("#revision")

    # Refused in the page (storage only grows), without a keystroke in between.
    page.evaluate("document.querySelector('#storage-gi').value = '5'")
    page.click("#save-storage")
    page.wait_for_selector("#storage-error:has-text('Storage only grows')")
    assert page.text_content("#save-status") == "" and page.is_hidden("#revision")

    # Refused by the server (one storage request at a time), right after a success.
    page.fill("#storage-gi", "20")
    page.click("#save-storage")
    page.wait_for_selector("#save-status:has-text('requested, waiting for an operator')")
    page.evaluate("document.querySelector('#storage-gi').value = '30'")
    page.click("#save-storage")
    page.wait_for_selector("#save-error:has-text('already waiting for an operator')")
    assert page.text_content("#save-status") == ""
    assert page_problems == []


def test_commit_ids_in_the_history_never_wrap(
    live_server, new_page, page_problems, git_server, user1, cluster1
):
    page = new_page(viewport={"width": 390, "height": 844})
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + CLUSTER_PAGE)
    page.wait_for_selector('[data-testid="history-row"] code[data-commit]')

    heights = page.eval_on_selector_all(
        '[data-testid="history-row"] code[data-commit]',
        "codes => codes.map(c => [c.getClientRects().length, getComputedStyle(c).whiteSpace])",
    )
    assert heights and all(rects == 1 and space == "nowrap" for rects, space in heights)
    assert page_problems == []


def test_the_header_takes_little_of_a_phone_screen(
    live_server, new_page, page_problems, screenshot, user1, cluster1
):
    page = new_page(viewport={"width": 390, "height": 844})
    sign_in(page, live_server.url, "client1@example.com")

    header = page.locator("#app-header").bounding_box()

    assert header["height"] <= 844 * 0.1, f"the header is {header['height']:.0f} px of 844"
    assert page.is_visible("#signout") and page.is_visible("#nav-clusters")
    screenshot(page, "clusters-phone")
    assert page_problems == []


@pytest.mark.parametrize("path", ["/#/tokens", "/#/clients/client1/team"])
def test_on_a_small_phone_nothing_scrolls_sideways_and_every_link_is_in_sight(
    live_server, new_page, page_problems, screenshot, admin1, cluster1, path
):
    from tests.helpers import access_token_made

    # Names people type, at the longest the API takes, with no space to break at.
    access_token_made(admin1, name="ci-" + "x" * 97, clients={"client1": ["view"]})
    page = new_page(viewport={"width": 375, "height": 800})
    sign_in(page, live_server.url, admin1.email)
    page.goto(live_server.url + path)
    page.wait_for_selector("#page-title")
    page.wait_for_load_state("networkidle")

    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    for link in page.locator("#main-nav a").all():
        box = link.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375, link.text_content()
    assert page.locator("#app-header").bounding_box()["height"] <= 800 * 0.1
    screenshot(page, "phone" + path.replace("/", "-").replace("#", ""))
    assert page_problems == []


def test_session_cards_are_compact(live_server, new_page, page_problems, screenshot, user1, cluster1):
    for agent in ("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "curl/8.5.0"):
        DjangoClient(HTTP_USER_AGENT=agent).post(
            "/api/auth/login",
            {"email": "client1@example.com", "password": b64(PASSWORD), "tokenDelivery": "body"},
            content_type="application/json",
        )
    page = new_page(viewport={"width": 390, "height": 844})
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + "/#/sessions")
    page.wait_for_selector('[data-testid="session-row"][data-current="false"]')

    heights = page.eval_on_selector_all(
        '[data-testid="session-row"]', "rows => rows.map(r => r.offsetHeight)"
    )

    assert len(heights) == 3
    assert max(heights) <= 190, heights
    screenshot(page, "sessions-phone")
    assert page_problems == []


def test_the_storage_change_has_its_control(
    live_server, new_page, page_problems, git_server, user1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + CLUSTER_PAGE)
    assert page.get_attribute("#storage-gi", "min") == "10"
    assert page.is_visible("#save-storage") and page.get_by_label("Storage (GiB)").is_visible()
    assert page_problems == []
