"""Look-alike spellings of an email never reach another spelling's account or escape its throttle."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

import accounts.google
from accounts.emails import email_canonical
from accounts.google import CachingRequest
from accounts.models import User
from tests.accounts.google_tokens import CLIENT_ID, id_token
from tests.conftest import login

PASSWORD = "correct horse battery"


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Client2@Example.COM", "client2@example.com"),
        (" client2@example.com ", "client2@example.com"),
        ("ſtaff1@example.com", "staff1@example.com"),  # long s: NFKC makes it an s
        ("\u212aate@example.com", "kate@example.com"),  # Kelvin sign
        ("ｃｌｉｅｎｔ２@example.com", "client2@example.com"),  # fullwidth
        ("a@BÜCHER.de", "a@xn--bcher-kva.de"),  # an internationalised domain, as punycode
    ],
)
def test_spellings_that_mean_the_same_address_share_one_canonical_form(raw, canonical):
    assert email_canonical(raw) == canonical


@pytest.mark.parametrize("raw", ["clıent2@example.com", "client2@exam\u0131ple.com@", "no-at-sign", "", None])
def test_what_has_no_canonical_form_is_refused(raw):
    with pytest.raises(ValidationError):
        email_canonical(raw)


@pytest.mark.parametrize(
    "raw",
    [
        '"admin@example.com"@attacker.test',  # reads as admin@example.com to a careless parser
        '"x\x0by"@attacker.test',  # a control character gunicorn refuses in X-Auth-Email
        "a,b@example.com",
        "a@[127.0.0.1]",
        "a..b@example.com",
        ".a@example.com",
        "a@-example.com",
        "a@exa_mple.com",
    ],
)
def test_an_address_another_service_could_misread_is_refused(raw):
    """The address travels to other services (X-Auth-Email, the JWT's claim): plain text only."""
    with pytest.raises(ValidationError):
        email_canonical(raw)


def test_an_admin_cannot_invite_a_quoted_address_that_contains_another(as_admin1):
    response = as_admin1.post(
        "/api/clients/client1/invitations",
        {"email": '"admin@example.com"@attacker.test', "role": "viewer"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request" and list(response.json()["fields"]) == ["email"]


@pytest.mark.parametrize(
    "raw", ["o'brien+tag@mail.example.co.uk", "first.last@xn--bcher-kva.de", "a@localhost"]
)
def test_ordinary_addresses_stay_accepted(raw):
    assert email_canonical(raw) == raw


@pytest.fixture
def client2(user_factory) -> User:
    return user_factory(email="client2@example.com", password=PASSWORD)


def _lock_out(settings, email: str) -> None:
    settings.LOGIN_THROTTLE_ACCOUNT, settings.LOGIN_THROTTLE_IP = "5/min", "1000/min"
    for n in range(5):
        assert login(APIClient(REMOTE_ADDR=f"198.51.100.{n}"), email, "wrong").status_code == 401


def test_a_dotless_i_look_alike_never_signs_in_even_after_the_account_is_locked(client2, settings):
    _lock_out(settings, "client2@example.com")
    response = login(APIClient(REMOTE_ADDR="198.51.100.50"), "clıent2@example.com", PASSWORD)
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["email"]
    assert "accessToken" not in str(response.cookies)


@pytest.mark.parametrize("spelling", ["ſtaff1@example.com", "STAFF1@example.com", "ｓｔａｆｆ１@example.com"])
def test_a_look_alike_that_means_the_same_account_shares_its_throttle(user_factory, settings, spelling):
    user_factory(email="staff1@example.com", password=PASSWORD)
    _lock_out(settings, "staff1@example.com")
    response = login(APIClient(REMOTE_ADDR="198.51.100.60"), spelling, PASSWORD)
    assert (response.status_code, response.json()["code"]) == (429, "throttled")


def test_google_sign_in_with_a_look_alike_email_reaches_no_account(
    client2, settings, google, google_key, monkeypatch
):
    settings.GOOGLE_CLIENT_IDS = [CLIENT_ID]
    monkeypatch.setattr(accounts.google, "_google_request", CachingRequest(google))
    credential = id_token(google_key, email="clıent2@example.com", hd="example.com")
    response = APIClient().post("/api/auth/google", {"credential": credential}, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "no_account")
    assert not client2.google_accounts.exists()


@pytest.mark.parametrize(
    ("spelling", "stored"),
    [("CLIENT3@Example.COM", "client3@example.com"), ("ſtaff9@example.com", "staff9@example.com")],
)
def test_users_are_stored_in_canonical_form(db, spelling, stored):
    assert User.objects.create_user(email=spelling, password=PASSWORD).email == stored


def test_a_second_spelling_of_an_existing_address_is_a_duplicate(client2):
    with pytest.raises(ValidationError) as excinfo:
        User.objects.create_user(email="ＣＬＩＥＮＴ２@example.com", password=PASSWORD)
    assert "email" in excinfo.value.message_dict
    with pytest.raises(ValidationError, match="ASCII"):
        User.objects.create_user(email="clıent2@example.com", password=PASSWORD)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("migrated_back_afterwards")
def test_the_migration_canonicalises_existing_rows_and_reports_collisions(capsys):
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0003_googleaccount")])
    old = executor.loader.project_state([("accounts", "0003_googleaccount")]).apps.get_model(
        "accounts", "User"
    )
    rows = ["Mixed@Example.COM", "ſtaff1@example.com", "staff1@example.com", "clıent2@example.com"]
    pks = [old.objects.create(email=email, password="!").pk for email in rows]

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([("accounts", "0004_canonical_emails")])

    stored = dict(User.objects.filter(pk__in=pks).values_list("pk", "email"))
    assert [stored[pk] for pk in pks] == [
        "mixed@example.com",
        "ſtaff1@example.com",  # its canonical form belongs to another user: left alone, reported
        "staff1@example.com",
        "clıent2@example.com",  # no canonical form: left alone, reported
    ]
    report = capsys.readouterr().out
    assert "collides with 'staff1@example.com'" in report and "has no canonical form" in report
