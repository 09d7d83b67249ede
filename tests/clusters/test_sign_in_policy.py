"""A client's sign-in policy: a session's scope holds the client only when the way it signed in
satisfies the policy (method, Google Workspace, second factor, session length); otherwise
/api/auth/permissions says what the client asks, so the app can offer the step-up. Google sign-ins
from the client's Workspace can become members just in time."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pyotp
import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from clusters.models import ClientAuditEvent, Grant, RemovedMember, SignInPolicy
from clusters.services import PolicyInput, grant_remove, grant_set, sign_in_policy_set
from clusters.services.policy import stricter_for_tokens
from config.errors import AuthUnavailable
from tests.accounts.google_tokens import id_token
from tests.conftest import login
from tests.helpers import DEAD_REDIS, token_parts

POLICY = "/api/clients/client1/policy"
CLUSTERS = "/api/clients/client1/clusters"


@pytest.fixture(autouse=True)
def google_sign_in_on(google):
    return google


def policy(client, **wanted) -> SignInPolicy:
    """Set a policy as operator staff would (no session of theirs to satisfy)."""
    defaults = dict(
        allowed_methods=("password", "google", "passkey"),
        google_domain="",
        mfa_required=False,
        max_session_length=None,
        jit_provisioning=False,
        jit_role="viewer",
    )
    return sign_in_policy_set(
        client=client, wanted=PolicyInput(**{**defaults, **wanted}), actor=None, facts=None
    )


def google_sign_in(google_key, *, email="alice@example.com", hd="example.com", sub="1101") -> APIClient:
    client = APIClient()
    response = client.post(
        "/api/auth/google",
        {"credential": id_token(google_key, email=email, hd=hd, sub=sub), "tokenDelivery": "body"},
        format="json",
    )
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['accessToken']}")
    client.tokens = response.json()
    return client


def test_a_password_session_does_not_reach_a_google_only_client_and_is_told_why(
    bearer_client, user1, client1, cluster1
):
    policy(client1, allowed_methods=("google",))
    member = bearer_client(user1)

    assert member.tokens["user"]["scopes"] == []
    assert token_parts(member.tokens["accessToken"])[1]["scope"] == ""
    refused = member.get(CLUSTERS)
    assert (refused.status_code, refused.json()["code"]) == (403, "step_up_required")
    assert "sign in another way" in refused.json()["detail"]
    assert member.get("/api/auth/validate")["X-Auth-Scope"] == ""
    permissions = member.get("/api/auth/permissions").json()
    assert permissions["clients"] == {}
    assert permissions["restricted"] == [
        {
            "client": "client1",
            "name": "Client One",
            "unmet": ["method"],
            "allowedMethods": ["google"],
            "googleDomain": "",
            "secondFactor": False,
            "maxSessionLength": None,
        }
    ]
    assert member.get("/api/clients").json() == []


def test_a_google_session_of_the_clients_workspace_reaches_it(google, user, client1, client2, cluster1):
    grant_set(user=user, client=client1, role=Grant.Role.VIEWER)  # alice@example.com
    grant_set(user=user, client=client2, role=Grant.Role.VIEWER)
    policy(client1, allowed_methods=("google",), google_domain="example.com")
    policy(client2, allowed_methods=("google",), google_domain="other.example")

    member = google_sign_in(google)

    assert member.tokens["user"]["scopes"] == ["client1"]
    assert member.get(CLUSTERS).status_code == 200
    assert member.get("/api/auth/validate")["X-Auth-Scope"] == "client1"
    (restricted,) = member.get("/api/auth/permissions").json()["restricted"]
    assert (restricted["client"], restricted["unmet"]) == ("client2", ["google_domain"])


def test_a_client_that_requires_a_second_factor_admits_the_session_once_it_proves_one(
    auth_client, user1, client1, cluster1
):
    policy(client1, mfa_required=True)
    member = auth_client(user1)
    assert member.get(CLUSTERS).json()["code"] == "step_up_required"
    assert member.get("/api/auth/permissions").json()["restricted"][0]["unmet"] == ["second_factor"]

    # The step-up the app offers: add a second factor, in this very session.
    secret = member.post("/api/auth/mfa/totp").json()["secret"]
    member.post("/api/auth/mfa/totp/confirm", {"code": pyotp.TOTP(secret).now()}, format="json")

    assert member.get(CLUSTERS).status_code == 200
    assert member.get("/api/auth/permissions").json()["restricted"] == []


def test_a_session_older_than_the_maximum_length_loses_the_client(user1, client1, cluster1):
    policy(client1, max_session_length=timedelta(minutes=10))
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        member = APIClient()
        tokens = login(member, user1, tokenDelivery="body").json()
        access = token_parts(tokens["accessToken"])[1]
        assert access["exp"] - access["iat"] <= 600  # the token ends when the client stops admitting it
        member.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['accessToken']}")
        traveller.shift(timedelta(minutes=9))
        assert member.get(CLUSTERS).status_code == 200
        traveller.shift(timedelta(minutes=2))
        assert member.get(CLUSTERS).json()["code"] == "token_not_valid"  # expired: the app refreshes

        refresh = f"Bearer {tokens['refreshToken']}"
        refreshed = APIClient().post("/api/auth/refresh", HTTP_AUTHORIZATION=refresh).json()
        assert refreshed["user"]["scopes"] == []
        member.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed['accessToken']}")
        assert member.get(CLUSTERS).json()["code"] == "step_up_required"
        (restricted,) = member.get("/api/auth/permissions").json()["restricted"]
        assert (restricted["unmet"], restricted["maxSessionLength"]) == (["session_age"], 600)
        assert login(APIClient(), user1, tokenDelivery="body").json()["user"]["scopes"] == ["client1"]


def test_an_admin_cannot_set_a_policy_that_leaves_their_own_session_out(auth_client, admin1, client1):
    as_admin = auth_client(admin1)
    body = {"allowedMethods": ["google"], "googleDomain": "", "mfaRequired": False, "maxSessionLength": None}

    refused = as_admin.put(POLICY, body, format="json")

    assert (refused.status_code, list(refused.json()["fields"])) == (400, ["policy"])
    # Words for people, not the API's codes: the app shows it under the form.
    assert refused.json()["fields"]["policy"] == [
        "Your session would not satisfy it: sign in another way first."
    ]
    assert not SignInPolicy.objects.exists()
    accepted = as_admin.put(
        POLICY, {**body, "allowedMethods": ["password", "google"], "maxSessionLength": 3600}, format="json"
    )
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["maxSessionLength"] == 3600 and accepted.json()["updatedBy"] == admin1.email
    event = ClientAuditEvent.objects.get(type="policy_changed")
    assert event.detail == "allowed methods: any -> google, password; max session length: none -> 1 h"


def test_a_google_workspace_is_proven_by_the_admin_signing_in_with_it(google, user, client1):
    grant_set(user=user, client=client1, role=Grant.Role.ADMIN)  # alice@example.com, Workspace example.com
    body = {"allowedMethods": ["google"], "googleDomain": "Example.COM", "mfaRequired": False, "maxSessionLength": None,
            "jitProvisioning": True, "jitRole": "operator"}  # fmt: skip
    as_admin = google_sign_in(google)

    saved = as_admin.put(POLICY, body, format="json").json()
    assert (saved["googleDomain"], saved["jitProvisioning"], saved["jitRole"]) == (
        "example.com",
        True,
        "operator",
    )
    other = as_admin.put(POLICY, {**body, "googleDomain": "other.example"}, format="json")
    assert list(other.json()["fields"]) == ["policy"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"allowedMethods": []}, "allowedMethods"),
        ({"allowedMethods": ["sms"]}, "allowedMethods"),
        ({"googleDomain": "example.com", "allowedMethods": ["password"]}, "googleDomain"),
        ({"googleDomain": "example.com", "allowedMethods": ["password", "google"]}, "googleDomain"),
        ({"googleDomain": "not a domain"}, "googleDomain"),
        ({"jitProvisioning": True}, "jitProvisioning"),
        ({"jitRole": "admin"}, "jitRole"),
        ({"maxSessionLength": 60}, "maxSessionLength"),
        ({"maxSessionLength": 299}, "maxSessionLength"),
        ({"mfaRequired": "yes"}, "mfaRequired"),
        ({"mfaRequired": 1}, "mfaRequired"),
        ({"maxSessionLength": 10**18}, "maxSessionLength"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_a_policy_that_makes_no_sense_is_a_400(bearer_client, operator_staff, client1, change, field):
    body = {"allowedMethods": ["password", "google"], **change}
    response = bearer_client(operator_staff).put(POLICY, body, format="json")
    assert response.status_code == 400
    assert [name.split(".")[0] for name in response.json()["fields"]] == [field]


def test_a_google_only_policy_is_refused_where_google_sign_in_is_off(
    bearer_client, operator_staff, client1, settings
):
    settings.GOOGLE_CLIENT_IDS = []

    response = bearer_client(operator_staff).put(POLICY, {"allowedMethods": ["google"]}, format="json")

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "allowedMethods": [
            "Google sign-in is not set up on this portal: no member could sign in. Allow another way too."
        ]
    }
    assert not SignInPolicy.objects.exists()
    allowed = bearer_client(operator_staff).put(
        POLICY, {"allowedMethods": ["google", "password"]}, format="json"
    )
    assert allowed.status_code == 200  # Google beside another method locks no one out


def test_members_read_the_policy_and_only_admins_change_it(auth_client, user1, client1):
    policy(client1, mfa_required=False, max_session_length=timedelta(hours=8))
    member = auth_client(user1)
    assert member.get(POLICY).json()["maxSessionLength"] == 8 * 3600
    refused = member.put(POLICY, {"allowedMethods": ["password"]}, format="json")
    assert refused.json()["code"] == "permission_denied"


def test_saving_the_policy_unchanged_records_no_change_and_keeps_its_last_author(
    auth_client, admin1, client1
):
    first = policy(client1, allowed_methods=("password",))
    changes = ClientAuditEvent.objects.filter(type=ClientAuditEvent.Type.POLICY_CHANGED).count()

    # "Save" pressed again, or a script that PUTs what is there already (a duplicate included).
    saved = auth_client(admin1).put(POLICY, {"allowedMethods": ["password", "password"]}, format="json")

    assert saved.status_code == 200 and saved.json()["allowedMethods"] == ["password"]
    assert saved.json()["updatedBy"] != admin1.email  # still the operator who set it
    assert SignInPolicy.objects.get(client=client1).updated_at == first.updated_at
    assert ClientAuditEvent.objects.filter(type=ClientAuditEvent.Type.POLICY_CHANGED).count() == changes


def test_the_default_policy_asks_nothing(auth_client, user1, client1):
    body = auth_client(user1).get(POLICY).json()
    assert body["allowedMethods"] == ["password", "google", "passkey"] and body["updatedAt"] is None


def test_a_policy_change_applies_to_members_at_once(bearer_client, user1, client1, cluster1):
    member = bearer_client(user1)
    assert member.get(CLUSTERS).status_code == 200
    policy(client1, allowed_methods=("google",))
    response = member.get(CLUSTERS)
    assert response.json()["code"] == "step_up_required"
    assert member.get("/api/auth/validate")["X-Auth-Scope"] == ""


def test_google_sign_ins_from_the_workspace_become_members_just_in_time(google, client1, client2, cluster1):
    policy(
        client1,
        allowed_methods=("google",),
        google_domain="example.com",
        jit_provisioning=True,
        jit_role="operator",
    )

    member = google_sign_in(google, email="newcomer@example.com", sub="2202")

    user = User.objects.get(email="newcomer@example.com")
    assert Grant.objects.get(user=user, client=client1).role == "operator"
    assert member.tokens["user"]["scopes"] == ["client1"]
    assert ClientAuditEvent.objects.get(type="member_provisioned").target_user == user
    stranger = APIClient().post(
        "/api/auth/google",
        {"credential": id_token(google, email="x@elsewhere.example", hd="elsewhere.example", sub="3303")},
        format="json",
    )
    assert stranger.json()["code"] == "no_account"

    grant_remove(user=user, client=client1)  # an admin removed them: the next sign-in does not undo it
    assert google_sign_in(google, email="newcomer@example.com", sub="2202").tokens["user"]["scopes"] == []


def _provisioning_client(google_key, client, user) -> APIClient:
    """``client`` provisions example.com's Google sign-ins as operators; returns its admin ``user``
    (alice@example.com) signed in with that Workspace, as such a policy asks."""
    grant_set(user=user, client=client, role=Grant.Role.ADMIN)
    policy(client, allowed_methods=("google",), google_domain="example.com", jit_provisioning=True,
           jit_role="operator")  # fmt: skip
    return google_sign_in(google_key)


def test_a_removed_member_stays_removed_once_the_trail_that_recorded_it_is_pruned(
    google, user, client1, settings
):
    settings.AUDIT_RETENTION = timedelta(days=30)
    as_admin = _provisioning_client(google, client1, user)
    google_sign_in(google, email="contractor@example.com", sub="2202")
    contractor = User.objects.get(email="contractor@example.com")
    assert as_admin.delete(f"/api/clients/client1/members/{contractor.pk}").status_code == 204

    ClientAuditEvent.objects.update(at=timezone.now() - timedelta(days=31))
    call_command("records_prune", stdout=StringIO())
    assert not ClientAuditEvent.objects.filter(type="member_removed").exists()

    again = google_sign_in(google, email="contractor@example.com", sub="2202")
    assert again.tokens["user"]["scopes"] == []
    assert not Grant.objects.filter(client=client1, user=contractor).exists()


def test_a_deleted_accounts_owner_is_not_provisioned_again_by_their_next_google_sign_in(
    google, user, client1, admin_browser
):
    _provisioning_client(google, client1, user)
    google_sign_in(google, email="contractor@example.com", sub="2202")
    contractor = User.objects.get(email="contractor@example.com")
    deleted = admin_browser.post(f"/admin/accounts/user/{contractor.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302

    response = APIClient().post(
        "/api/auth/google",
        {"credential": id_token(google, email="contractor@example.com", hd="example.com", sub="2202")},
        format="json",
    )

    assert response.json()["code"] == "no_account"  # no account made only to sit outside the client
    assert not Grant.objects.filter(client=client1, user__email="contractor@example.com").exists()


def test_an_accepted_invitation_brings_a_removed_member_back_for_good(google, user, client1):
    as_admin = _provisioning_client(google, client1, user)
    google_sign_in(google, email="contractor@example.com", sub="2202")
    contractor = User.objects.get(email="contractor@example.com")
    as_admin.delete(f"/api/clients/client1/members/{contractor.pk}")
    assert (
        as_admin.post(
            "/api/clients/client1/invitations",
            {"email": "contractor@example.com", "role": "viewer"},
            format="json",
        ).status_code
        == 201
    )
    (token,) = re.findall(r"#/invitations/([A-Za-z0-9_-]+)", mail.outbox[-1].body)

    member = google_sign_in(google, email="contractor@example.com", sub="2202")
    assert member.post("/api/invitations/accept", {"token": token}, format="json").status_code == 200

    assert not RemovedMember.objects.filter(client=client1).exists()
    assert Grant.objects.get(client=client1, user=contractor).role == "viewer"


# --- Personal access tokens under a policy that changes -----------------------------------------


def _token_of(session: APIClient, clients: dict[str, list[str]]) -> APIClient:
    made = session.post("/api/auth/tokens", {"name": "CI", "clients": clients}, format="json")
    assert made.status_code == 201, made.content
    script = APIClient()
    script.credentials(HTTP_AUTHORIZATION=f"Bearer {made.json()['token']}")
    return script


def test_a_stricter_policy_takes_the_client_out_of_tokens_made_under_the_old_one(
    auth_client, user1, client1, client2, cluster1
):
    grant_set(user=user1, client=client2, role=Grant.Role.VIEWER)
    session = auth_client(user1)
    both = _token_of(session, {"client1": ["view"], "client2": ["view"]})
    only_client1 = _token_of(session, {"client1": ["view"]})

    policy(client1, mfa_required=True)

    assert both.get("/api/auth/validate")["X-Auth-Scope"] == "client2"
    assert both.get(CLUSTERS).json()["code"] == "permission_denied"
    refused = only_client1.get("/api/auth/validate")
    assert (refused.status_code, refused.json()["code"]) == (403, "token_not_valid")
    event = ClientAuditEvent.objects.filter(client=client1, type=ClientAuditEvent.Type.POLICY_CHANGED).get()
    assert event.detail.endswith("; 2 personal access token(s) lost the client")


def test_a_stricter_policy_the_cache_cannot_be_told_about_changes_nothing(
    auth_client, user1, client1, cluster1
):
    script = _token_of(auth_client(user1), {"client1": ["view"]})
    with override_settings(CACHES=DEAD_REDIS), pytest.raises(AuthUnavailable):
        policy(client1, mfa_required=True)

    assert not SignInPolicy.objects.filter(client=client1).exists()
    assert script.get("/api/auth/validate")["X-Auth-Scope"] == "client1"


def test_a_policy_that_asks_no_more_of_a_sign_in_leaves_tokens_alone(auth_client, user1, client1, cluster1):
    script = _token_of(auth_client(user1), {"client1": ["view"]})

    policy(client1, max_session_length=timedelta(hours=1))  # sessions only
    policy(client1, allowed_methods=("password", "google", "passkey"), max_session_length=None)

    assert script.get("/api/auth/validate")["X-Auth-Scope"] == "client1"
    assert script.get(CLUSTERS).status_code == 200


def _rules(methods=("password", "google", "passkey"), domain="", mfa=False) -> SignInPolicy:
    return SignInPolicy(allowed_methods=list(methods), google_domain=domain, mfa_required=mfa)


@pytest.mark.parametrize(
    ("before", "after", "stricter"),
    [
        (None, _rules(), False),
        (None, _rules(methods=("google",)), True),
        (_rules(methods=("password", "google")), _rules(), False),
        (_rules(), _rules(methods=("password", "passkey")), True),
        (_rules(methods=("google",), domain="a.example"), _rules(methods=("google",)), False),
        (
            _rules(methods=("google",), domain="a.example"),
            _rules(methods=("google",), domain="b.example"),
            True,
        ),
        (_rules(), _rules(mfa=True), True),
        (_rules(mfa=True), _rules(), False),
    ],
)
def test_what_counts_as_stricter_for_tokens(before, after, stricter):
    assert stricter_for_tokens(before=before, after=after) is stricter


PREVIEW = "/api/clients/client1/policy/preview"


def test_a_preview_says_whom_a_stricter_policy_would_cut_off_and_changes_nothing(
    auth_client, admin1, user1, viewer1, client1, cluster1
):
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        early = auth_client(user1)  # signed in a quarter of an hour before the admin
        script = _token_of(early, {"client1": ["view"]})
        traveller.shift(timedelta(minutes=15))
        assert early.get(CLUSTERS).status_code == 200
        recent = auth_client(viewer1)
        as_admin = auth_client(admin1)
        body = {"allowedMethods": ["password", "passkey"], "maxSessionLength": 600}

        preview = as_admin.post(PREVIEW, body, format="json")

        assert preview.status_code == 200, preview.content
        assert preview.json() == {
            "changes": ["allowed methods: any -> passkey, password", "max session length: none -> 10 min"],
            "membersToSignInAgain": [
                {
                    "email": "client1@example.com",
                    "name": "Client One User",
                    "unmet": ["session_age"],
                    "detail": "sign in again (its maximum session length has passed)",
                }
            ],
            "tokensLosingClient": 1,
        }
        assert not SignInPolicy.objects.exists() and not ClientAuditEvent.objects.filter(
            type="policy_changed"
        )
        assert early.get(CLUSTERS).status_code == 200 and script.get(CLUSTERS).status_code == 200

        assert as_admin.put(POLICY, body, format="json").status_code == 200  # what it said, it does
        assert early.get(CLUSTERS).json()["code"] == "step_up_required"
        assert script.get("/api/auth/validate").status_code == 403
        assert recent.get(CLUSTERS).status_code == 200


def test_a_preview_refuses_what_saving_would_refuse_and_is_for_admins_only(
    auth_client, admin1, user1, client1
):
    as_admin = auth_client(admin1)
    leaves_me_out = as_admin.post(PREVIEW, {"allowedMethods": ["google"]}, format="json")
    assert (leaves_me_out.status_code, list(leaves_me_out.json()["fields"])) == (400, ["policy"])
    nonsense = as_admin.post(PREVIEW, {"allowedMethods": []}, format="json")
    assert (nonsense.status_code, list(nonsense.json()["fields"])) == (400, ["allowedMethods"])
    refused = auth_client(user1).post(PREVIEW, {"allowedMethods": ["password"]}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")


def test_a_preview_of_the_policy_in_force_or_a_looser_one_cuts_no_one(auth_client, admin1, user1, client1):
    policy(client1, allowed_methods=("password",))
    auth_client(user1)
    as_admin = auth_client(admin1)

    same = as_admin.post(PREVIEW, {"allowedMethods": ["password"]}, format="json").json()
    looser = as_admin.post(PREVIEW, {"allowedMethods": ["password", "passkey"]}, format="json").json()

    assert same == {"changes": [], "membersToSignInAgain": [], "tokensLosingClient": 0}
    assert looser == {
        "changes": ["allowed methods: password -> passkey, password"],
        "membersToSignInAgain": [],
        "tokensLosingClient": 0,
    }


def test_saving_the_default_policy_as_it_is_is_no_change(auth_client, admin1, client1):
    """The page shows a client without a policy as every way of signing in; saving that form
    untouched changes nothing, and the trail does not say "any -> google, passkey, password"."""
    as_admin = auth_client(admin1)
    shown = as_admin.get(POLICY).json()
    body = {
        name: shown[name] for name in ("allowedMethods", "googleDomain", "mfaRequired", "maxSessionLength")
    }

    assert as_admin.post(PREVIEW, body, format="json").json()["changes"] == []
    saved = as_admin.put(POLICY, body, format="json")

    assert saved.status_code == 200 and saved.json()["updatedAt"] is None
    assert not SignInPolicy.objects.exists()
    assert not ClientAuditEvent.objects.filter(type=ClientAuditEvent.Type.POLICY_CHANGED).exists()


def test_the_preview_and_the_trail_count_the_same_tokens_an_expired_one_not_among_them(
    auth_client, admin1, user1, client1
):
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        session = auth_client(user1)
        for name, lifetime in (("nightly", "7d"), ("one-off", "1m")):
            made = session.post(
                "/api/auth/tokens",
                {"name": name, "clients": {"client1": ["view"]}, "expiresIn": lifetime},
                format="json",
            )
            assert made.status_code == 201, made.content
        traveller.shift(timedelta(minutes=2))  # the one-off token has expired
        as_admin = auth_client(admin1)
        body = {"allowedMethods": ["password"]}

        assert as_admin.post(PREVIEW, body, format="json").json()["tokensLosingClient"] == 1
        assert as_admin.put(POLICY, body, format="json").status_code == 200

    event = ClientAuditEvent.objects.get(type=ClientAuditEvent.Type.POLICY_CHANGED)
    assert event.detail.endswith("; 1 personal access token(s) lost the client")


@pytest.mark.parametrize("seconds", [60, 1000 * 3600, 10**18])
def test_a_session_length_out_of_bounds_is_refused_in_words_a_person_reads(
    bearer_client, operator_staff, client1, settings, seconds
):
    """The browser app asks for hours: the refusal says the bounds as durations, and in the API's seconds."""
    settings.JWT_SESSION_MAX = timedelta(days=30)
    body = {"allowedMethods": ["password"], "maxSessionLength": seconds}
    response = bearer_client(operator_staff).put(POLICY, body, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["maxSessionLength"] == [
        "Between 5 min and 720 h (300 and 2592000 seconds)."
    ]
