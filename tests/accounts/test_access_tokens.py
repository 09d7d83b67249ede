"""Personal access tokens through the API: made by a signed-in session, shown once, stored as a hash,
accepted as ``Authorization: Bearer`` for exactly their scopes (and at /validate), and refused after
expiry, revocation, the user's deactivation and removal from the client; never as a cookie, and
never to manage tokens, members or second factors."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.tokens import default_token_generator
from django.test import override_settings
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.test import APIClient

from accounts import session_cache
from accounts.access_tokens import access_token_well_formed
from accounts.models import AuditEvent, PersonalAccessToken
from accounts.passwords import operator_password_set
from accounts.services import user_deactivate
from clusters.models import ClientAuditEvent, Grant
from clusters.services import grant_remove, grant_set
from tests.conftest import DEFAULT_PASSWORD, b64
from tests.helpers import DEAD_REDIS

TOKENS = "/api/auth/tokens"
CLUSTER = "/api/clients/client1/clusters/main"


def create(client, clients=None, **body):
    return client.post(
        TOKENS, {"name": "CI", "clients": clients or {"client1": ["view"]}, **body}, format="json"
    )


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def session1(auth_client, user1):
    return auth_client(user1)


@pytest.fixture
def pat(session1, cluster1, cluster2) -> str:
    """A token of client1's operator that may view and configure client1."""
    response = create(session1, {"client1": ["view", "configure"]})
    assert response.status_code == 201, response.content
    return response.json()["token"]


def test_the_secret_is_shown_once_and_only_its_hash_is_stored(session1, user1, cluster1):
    response = create(session1, {"client1": ["view", "configure"]}, expiresIn="90d")

    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["token"]
    assert re.fullmatch(r"qpt_[0-9A-Za-z]{49}", secret) and access_token_well_formed(secret)
    assert secret.startswith(body["prefix"]) and len(body["prefix"]) == 12
    assert body["clients"] == {"client1": ["configure", "view"]}
    row = PersonalAccessToken.objects.get(pk=body["id"])
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {str(value) for value in row.__dict__.values()}
    assert timedelta(days=89) < row.expires_at - timezone.now() <= timedelta(days=90)
    listed = session1.get(TOKENS).json()
    assert [token["id"] for token in listed] == [body["id"]] and "token" not in listed[0]
    assert AuditEvent.objects.filter(user=user1, type="token_created").count() == 1


@pytest.mark.parametrize(
    "name",
    [
        "invoice\u202etxt.exe",
        "CI\nprod",
        "CI\tdeploys",
        "CI\u2066deploys\u2069",
        "CI\x07",
        "CI\u200bdeploys",  # looks like "CIdeploys", is not
        "\u200b",
        "\u3164",  # Hangul filler: a letter that shows nothing
        "\u2800 \u2800",  # blank braille
        "deploy\U000e0070\U000e0072\U000e006f\U000e0064",  # text hidden in tag characters
        "CI\u034fdeploys",  # the combining grapheme joiner: a mark that shows nothing
        "\ufe0f",  # a variation selector alone
        "Team \U0001f3f4\U000e0069\U000e0067\U000e006e\U000e006f\U000e0072\U000e0065\U000e007f",  # no flag
    ],
    ids=[
        "right-to-left-override",
        "line-break",
        "tab",
        "isolate",
        "bell",
        "zero-width-space",
        "only-zero-width",
        "hangul-filler",
        "blank-braille",
        "tag-characters",
        "grapheme-joiner",
        "variation-selector-alone",
        "hidden-text-after-a-black-flag",
    ],
)
def test_a_token_name_that_would_read_differently_from_what_was_typed_is_refused(session1, name):
    response = create(session1, name=name)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request" and list(response.json()["fields"]) == ["name"]
    assert not PersonalAccessToken.objects.exists()


@pytest.mark.parametrize(
    "name",
    [
        "\U0001f469\u200d\U0001f4bb deploys",  # an emoji sequence with a joiner
        "توکن\u200cها",  # Persian, with a non-joiner
        "דני \u200f(2)",  # a right-to-left mark placing the parenthesis
        "deploys \U0001fa77",  # Unicode 15's pink heart, newer than Python 3.11's database
        "Zürich CI",
        "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f fans",  # England's flag
        "\u2764\ufe0f deploys",  # a variation selector after its emoji
        "\u2813\u280a\u2800\u2813\u280a",  # two Braille words and the Braille blank between them
    ],
)
def test_names_in_every_script_and_emoji_with_joiners_are_kept_as_typed(session1, name):
    response = create(session1, name=name)

    assert response.status_code == 201, response.content
    assert PersonalAccessToken.objects.get().name == name


def test_a_token_works_as_bearer_for_exactly_its_scopes(pat, user1, cluster2):
    client = bearer(pat)

    assert client.get(CLUSTER).status_code == 200
    scaled = client.patch(CLUSTER, {"replicas": 3}, format="json")  # configure, and no CSRF token needed
    assert scaled.status_code in (200, 202) and scaled.json()["replicas"] == 3
    assert client.get(f"{CLUSTER}/credentials").json()["code"] == "permission_denied"  # not in its scope
    assert client.get("/api/clients/client2/clusters").json()["code"] == "permission_denied"
    assert [c["slug"] for c in client.get("/api/clients").json()] == ["client1"]
    assert client.get("/api/auth/permissions").json()["clients"] == {"client1": ["view", "configure"]}
    assert client.get("/api/auth/me").json()["scopes"] == ["client1"]
    validate = client.get("/api/auth/validate")
    assert validate.status_code == 200
    assert (validate["X-Auth-User-Id"], validate["X-Auth-Email"], validate["X-Auth-Scope"]) == (
        str(user1.pk),
        user1.email,
        "client1",
    )


def test_a_token_can_do_no_more_than_its_user_can_now(pat, user1, client1):
    grant_set(user=user1, client=client1, role=Grant.Role.VIEWER)  # demoted after the token was made

    client = bearer(pat)
    assert client.get(CLUSTER).status_code == 200
    assert client.patch(CLUSTER, {"replicas": 3}, format="json").json()["code"] == "permission_denied"


def _password_reset(user) -> None:
    """The emailed link's confirmation, as the browser app sends it."""
    user.refresh_from_db()  # the link is made from the last sign-in and the password now
    body = {
        "uid": urlsafe_base64_encode(force_bytes(user.pk)),
        "token": default_token_generator.make_token(user),
        "newPassword": b64("a quite new passphrase 42"),
    }
    assert APIClient().post("/api/auth/password/reset/confirm", body, format="json").status_code == 204


@pytest.mark.parametrize(
    "ending",
    [
        "expiry",
        "revocation",
        "deactivation",
        "removal",
        "password reset",
        "password changed",
        "password set by an operator",
    ],
)
def test_a_token_is_refused_after_it_ends(pat, session1, user1, client1, ending):
    client = bearer(pat)
    assert client.get(CLUSTER).status_code == 200  # cached from here on
    if ending == "expiry":
        with time_machine.travel(timezone.now() + timedelta(days=31)):
            refused = client.get(CLUSTER)
            validate = client.get("/api/auth/validate")
    else:
        if ending == "revocation":
            token_id = session1.get(TOKENS).json()[0]["id"]
            assert session1.delete(f"{TOKENS}/{token_id}").status_code == 204
        elif ending == "deactivation":
            assert user_deactivate(user=user1)
        elif ending == "password reset":  # someone who knew the old password may have made it
            _password_reset(user1)
        elif ending == "password changed":  # by the user, who may have seen the old one misused
            body = {"currentPassword": b64(DEFAULT_PASSWORD), "newPassword": b64("a quite new passphrase 42")}
            assert session1.post("/api/auth/password", body, format="json").status_code == 204
        elif ending == "password set by an operator":
            operator_password_set(user=user1, password="a quite new passphrase 42")
        else:
            grant_remove(user=user1, client=client1)
        refused = client.get(CLUSTER)
        validate = client.get("/api/auth/validate")

    assert (refused.status_code, refused.json()["code"]) == (403, "token_not_valid")
    assert (validate.status_code, validate.json()["code"]) == (403, "token_not_valid")
    if ending != "expiry":
        assert PersonalAccessToken.objects.get().revoked_at is not None
    if ending.startswith("password"):
        assert AuditEvent.objects.get(type="token_revoked").detail.endswith(f"({ending})")


def test_removal_from_one_client_takes_it_out_of_the_token_for_good(
    session1, user1, client1, client2, cluster1
):
    grant_set(user=user1, client=client2, role=Grant.Role.VIEWER)
    client = bearer(create(session1, {"client1": ["view"], "client2": ["view"]}).json()["token"])
    assert client.get("/api/auth/validate")["X-Auth-Scope"] == "client1 client2"

    grant_remove(user=user1, client=client2)
    assert client.get("/api/auth/validate")["X-Auth-Scope"] == "client1"
    assert client.get("/api/clients/client2/clusters").json()["code"] == "permission_denied"
    grant_set(user=user1, client=client2, role=Grant.Role.VIEWER)  # back again; the token is not
    assert client.get("/api/auth/validate")["X-Auth-Scope"] == "client1"
    assert PersonalAccessToken.objects.get().scopes == {"client1": ["view"]}


@pytest.mark.parametrize("via", ["cookie", "x-auth-token"])
def test_a_token_is_refused_anywhere_but_the_authorization_header(pat, via):
    client = APIClient()
    if via == "cookie":
        client.cookies["__Host-accessToken"] = pat
    else:
        client.credentials(HTTP_X_AUTH_TOKEN=pat)

    for response in (client.get(CLUSTER), client.get("/api/auth/validate")):
        assert (response.status_code, response.json()["code"]) == (403, "token_not_valid")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", TOKENS),
        ("get", TOKENS),
        ("get", "/api/auth/sessions"),
        ("post", "/api/auth/mfa/totp"),
        ("get", "/api/clients/client1/members"),
        ("post", "/api/clients/client1/invitations"),
        ("put", "/api/clients/client1/policy"),
        ("post", f"{CLUSTER}/credentials/rotate"),
    ],
)
def test_a_token_cannot_manage_tokens_members_or_second_factors(pat, method, path):
    response = getattr(bearer(pat), method)(path, {}, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "pat_not_allowed")


def test_a_token_given_audit_exports_the_audit_trail_and_nothing_else_of_the_team(
    auth_client, admin1, session1, cluster1
):
    admin = auth_client(admin1)
    assert admin.get(f"{CLUSTER}/credentials").status_code == 200  # an event to export
    exporter = bearer(create(admin, {"client1": ["audit"]}).json()["token"])

    trail = exporter.get("/api/clients/client1/audit")

    assert trail.status_code == 200
    newest = trail.json()[0]
    assert (newest["type"], newest["actor"], newest["cluster"]) == (
        "credentials_revealed",
        admin1.email,
        "main",
    )
    assert (exporter.get("/api/clients/client1/members").json()["code"]) == "pat_not_allowed"
    assert (exporter.get(CLUSTER).json()["code"]) == "permission_denied"  # nor the clusters: not given
    viewer = bearer(create(admin, {"client1": ["view"]}).json()["token"])
    assert viewer.get("/api/clients/client1/audit").json()["code"] == "permission_denied"
    # Only who may read the trail may give a token that: an operator (role) may not.
    assert create(session1, {"client1": ["audit"]}).json()["code"] == "token_scope_exceeded"


def test_a_token_cannot_exceed_what_the_session_may_do(session1, viewer1, auth_client, client2, cluster1):
    assert create(session1, {"client2": ["view"]}).json()["code"] == "token_scope_exceeded"
    assert create(auth_client(viewer1), {"client1": ["configure"]}).json()["code"] == "token_scope_exceeded"
    members = create(session1, {"client1": ["members"]})
    assert (members.status_code, list(members.json()["fields"])) == (400, ["clients"])
    too_long = create(session1, expiresIn="400d")
    assert (too_long.status_code, list(too_long.json()["fields"])) == (400, ["expiresIn"])
    beyond_any_date = create(session1, expiresIn="9999999999999999d")
    assert (beyond_any_date.status_code, list(beyond_any_date.json()["fields"])) == (400, ["expiresIn"])
    for unlike_the_schema in ("\u0663d", "90 d", " 90d", "90d ", "90d\n"):  # ^[0-9]+[smhd]?$
        refused = create(session1, expiresIn=unlike_the_schema)
        assert (refused.status_code, list(refused.json()["fields"])) == (400, ["expiresIn"]), (
            unlike_the_schema
        )
    assert PersonalAccessToken.objects.count() == 0


@pytest.mark.parametrize(
    ("longest", "asked", "told"),
    [
        (timedelta(days=30), "31d", "A token lives at most 30 days (PAT_MAX_TTL)."),
        (timedelta(hours=12), "13h", "A token lives at most 12 hours (PAT_MAX_TTL)."),
        (timedelta(minutes=1), "2m", "A token lives at most 1 minute (PAT_MAX_TTL)."),
    ],
)
def test_a_token_longer_than_pat_max_ttl_is_told_the_longest_in_words(
    session1, cluster1, settings, longest, asked, told
):
    settings.PAT_MAX_TTL = longest

    refused = create(session1, expiresIn=asked)

    assert (refused.status_code, refused.json()["fields"]) == (400, {"expiresIn": [told]})


def test_making_a_token_needs_a_recent_authentication(session1, cluster1):
    with time_machine.travel(timezone.now() + timedelta(minutes=6), tick=True):
        refused = create(session1)
    assert (refused.status_code, refused.json()["code"]) == (403, "reauthentication_required")


def test_the_user_revokes_only_their_own_tokens(pat, auth_client, user2, session1):
    token_id = session1.get(TOKENS).json()[0]["id"]
    assert auth_client(user2).delete(f"{TOKENS}/{token_id}").json()["code"] == "not_found"
    assert session1.delete(f"{TOKENS}/{token_id}").status_code == 204
    assert session1.get(TOKENS).json() == []
    assert session1.delete(f"{TOKENS}/{token_id}").json()["code"] == "not_found"


# The last: a token's length whose checksum ends in a header byte 0xE9, which arrives as "é".
@pytest.mark.parametrize(
    "secret", ["qpt_", "qpt_" + "A" * 49, "Bearer", "qpt_" + "0" * 200, "qpt_" + "A" * 48 + "\u00e9"]
)
@pytest.mark.parametrize("path", [CLUSTER, "/api/auth/validate"])
def test_a_malformed_or_unknown_token_is_not_valid(db, secret, path, django_assert_num_queries):
    with django_assert_num_queries(0):  # the checksum refuses it before any query
        response = bearer(secret).get(path)
    assert (response.status_code, response.json()["code"]) == (403, "token_not_valid")


def test_last_use_is_recorded_at_most_once_a_minute(pat, settings):
    client = bearer(pat)
    client.get(CLUSTER, REMOTE_ADDR="203.0.113.7")
    token = PersonalAccessToken.objects.get()
    first = token.last_used_at
    assert first is not None and token.last_used_from == "203.0.113.7"

    client.get(CLUSTER, REMOTE_ADDR="203.0.113.8")
    assert PersonalAccessToken.objects.get().last_used_at == first
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        client.get("/api/auth/validate", REMOTE_ADDR="203.0.113.8")
    assert PersonalAccessToken.objects.get().last_used_from == "203.0.113.8"


def test_a_cached_token_is_checked_without_a_database_query_at_validate(pat, django_assert_num_queries):
    client = bearer(pat)
    assert client.get("/api/auth/validate").status_code == 200
    with django_assert_num_queries(0):
        assert client.get("/api/auth/validate").status_code == 200


def test_a_deactivation_while_the_cache_is_down_still_ends_the_tokens_for_good(pat, user1):
    with override_settings(CACHES=DEAD_REDIS):
        assert user_deactivate(user=user1) is False  # the cache could not be told

    user1.is_active = True
    user1.save(update_fields=["is_active"])  # an operator reactivates the account
    assert PersonalAccessToken.objects.get().revoked_at is not None
    assert bearer(pat).get(CLUSTER).json()["code"] == "token_not_valid"


def test_a_client_admin_lists_and_takes_the_client_out_of_a_members_token(
    pat, auth_client, user_factory, client1
):
    admin = user_factory(email="admin1@example.com")
    grant_set(user=admin, client=client1, role=Grant.Role.ADMIN)
    as_admin = auth_client(admin)

    listed = as_admin.get("/api/clients/client1/tokens").json()
    assert [(token["owner"], token["permissions"]) for token in listed] == [
        ("client1@example.com", ["configure", "view"])
    ]
    assert "token" not in listed[0] and pat not in str(listed)
    assert as_admin.delete(f"/api/clients/client1/tokens/{listed[0]['id']}").status_code == 204

    assert bearer(pat).get(CLUSTER).json()["code"] == "token_not_valid"  # client1 was all it reached
    assert as_admin.get("/api/clients/client1/tokens").json() == []
    assert as_admin.delete(f"/api/clients/client1/tokens/{listed[0]['id']}").status_code == 404


def test_a_client_admin_neither_sees_nor_revokes_an_operators_token(
    pat, auth_client, operator_staff, as_admin1, client1
):
    """An operator's token is their own, as their address and credential on the trail are: not the client's."""
    made = create(auth_client(operator_staff), {"client1": ["view", "credentials"]}, name="support-4711")
    operators = made.json()

    listed = as_admin1.get("/api/clients/client1/tokens").json()
    assert [token["owner"] for token in listed] == ["client1@example.com"]  # the member's only
    refused = as_admin1.delete(f"/api/clients/client1/tokens/{operators['id']}")

    assert (refused.status_code, refused.json()["code"]) == (404, "not_found")
    assert bearer(operators["token"]).get("/api/auth/validate")["X-Auth-Scope"] == "client1"
    assert not ClientAuditEvent.objects.filter(type="token_access_revoked").exists()


def test_the_clients_trail_says_whose_token_lost_the_client_and_which(pat, user1, as_admin1, client1):
    token = PersonalAccessToken.objects.get()
    assert as_admin1.delete(f"/api/clients/client1/tokens/{token.pk}").status_code == 204

    event = ClientAuditEvent.objects.get(type="token_access_revoked")
    assert (event.target_user, event.target_email) == (user1, "client1@example.com")
    assert event.detail == f"personal access token #{token.pk} “CI”, {token.prefix}…"
    (entry,) = [
        entry for entry in as_admin1.get("/api/clients/client1/audit").json() if entry["type"] == event.type
    ]
    assert entry["target"] == "client1@example.com"


def test_the_clients_token_list_says_what_a_demoted_owners_token_can_do_now(
    pat, auth_client, user_factory, user1, client1
):
    admin = user_factory(email="admin1@example.com")
    grant_set(user=admin, client=client1, role=Grant.Role.ADMIN)
    grant_set(user=user1, client=client1, role=Grant.Role.VIEWER)  # the owner is demoted

    listed = auth_client(admin).get("/api/clients/client1/tokens").json()
    assert [token["permissions"] for token in listed] == [["view"]]
    assert bearer(pat).patch(CLUSTER, {"replicas": 2}, format="json").status_code == 403  # as listed


def test_a_member_who_is_not_an_admin_cannot_see_the_clients_tokens(pat, session1):
    response = session1.get("/api/clients/client1/tokens")
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")


def test_a_refused_request_does_not_count_as_a_use(pat):
    refused = bearer(pat).get(TOKENS, REMOTE_ADDR="203.0.113.9")  # tokens cannot manage tokens
    assert refused.json()["code"] == "pat_not_allowed"
    assert PersonalAccessToken.objects.get().last_used_at is None


def test_a_token_read_just_before_its_revocation_is_not_cached_live_after_it(monkeypatch, pat, session1):
    """A request that read the token's row just before a revocation, and caches it after the
    revocation forgot it, must not keep the token working for CLAIMS_CACHE_TTL."""
    token_id = session1.get(TOKENS).json()[0]["id"]
    write = session_cache.access_token_cache_write

    def revoked_meanwhile(**arguments):  # the row was read while the token was live
        monkeypatch.setattr(session_cache, "access_token_cache_write", write)
        assert session1.delete(f"{TOKENS}/{token_id}").status_code == 204
        write(**arguments)

    monkeypatch.setattr(session_cache, "access_token_cache_write", revoked_meanwhile)
    bearer(pat).get(CLUSTER)
    monkeypatch.undo()

    refused = bearer(pat).get(CLUSTER)
    assert refused.status_code == 403 and refused.json()["code"] == "token_not_valid"
