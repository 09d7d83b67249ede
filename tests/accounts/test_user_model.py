import pytest
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from rest_framework.test import APIClient

from accounts.models import User
from tests.conftest import DEFAULT_PASSWORD, login


def test_email_is_stored_lower_case_and_found_ignoring_case(user_factory):
    user = user_factory(email="  Alice@Example.COM ")
    assert user.email == "alice@example.com"
    assert User.objects.get_by_natural_key("ALICE@example.com") == user


def test_a_second_user_with_the_same_email_in_other_case_is_refused(user_factory):
    user_factory(email="bob@example.com")
    with pytest.raises(ValidationError) as error:
        user_factory(email="BOB@example.com")
    assert "already exists" in str(error.value)


def test_the_database_refuses_case_variants_even_without_validation(user_factory):
    user_factory(email="carol@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.bulk_create([User(email="CAROL@example.com")])


def test_an_operator_must_be_staff(user_factory):
    with pytest.raises(ValidationError) as error:
        user_factory(is_operator=True, is_staff=False)
    assert "Operators must be staff." in str(error.value)


def test_display_name_falls_back_to_email(user_factory):
    assert user_factory(email="dave@example.com").get_full_name() == "dave@example.com"
    assert user_factory(email="erin@example.com", name="Erin").get_full_name() == "Erin"


def test_createsuperuser_makes_a_named_operator_who_can_sign_in(db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "an operator's long passphrase")
    call_command(
        "createsuperuser", "--noinput", "--email", "Ops@Example.com", "--name", "Ops Team", verbosity=0
    )
    operator = User.objects.get(email="ops@example.com")
    assert (operator.name, operator.is_operator, operator.is_staff) == ("Ops Team", True, True)
    assert login(APIClient(), operator, "an operator's long passphrase").status_code == 200


def test_createsuperuser_without_a_terminal_asks_for_the_name_it_needs(db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "an operator's long passphrase")
    with pytest.raises(CommandError, match="--name"):
        call_command("createsuperuser", "--noinput", "--email", "ops@example.com", verbosity=0)
    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("password", "why"),
    [
        (None, "needs DJANGO_SUPERUSER_PASSWORD"),
        ("short", "too short"),
        ("password123", "too common"),
        ("ops@example.com", "too similar to the email"),
    ],
)
def test_createsuperuser_makes_no_operator_without_a_usable_password(db, monkeypatch, password, why):
    """An operator nobody can sign in as (a password reset sends such an account nothing), or one
    with a password the portal refuses everywhere else."""
    if password is None:
        monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", password)
    with pytest.raises(CommandError, match=why):
        call_command(
            "createsuperuser", "--noinput", "--email", "ops@example.com", "--name", "Ops", verbosity=0
        )
    assert not User.objects.exists()


def test_createsuperuser_asked_without_a_terminal_fails_instead_of_skipping(db, monkeypatch):
    """kubectl exec without -it: Django's skips the account and exits 0; a script would not notice."""
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(CommandError, match="run it in a terminal"):
        call_command("createsuperuser", verbosity=0)
    assert not User.objects.exists()


@pytest.fixture
def older_hash(settings, user_factory) -> User:
    """A user whose password (DEFAULT_PASSWORD) is stored in a format the settings no longer prefer."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    ]
    user = user_factory(email="old@example.com")
    User.objects.filter(pk=user.pk).update(password=make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha1"))
    return User.objects.get(pk=user.pk)


def test_a_password_in_an_older_format_is_re_hashed_when_it_is_checked(older_hash):
    assert older_hash.check_password(DEFAULT_PASSWORD)
    assert older_hash.password.startswith("md5$")
    assert User.objects.get(pk=older_hash.pk).password == older_hash.password


def test_the_re_hash_of_a_password_changed_since_it_was_read_is_not_written(older_hash):
    """Django's own re-hash would write the old password back over the change (a sign-in that
    read the row just before it; tests/accounts/test_races.py runs it at once on a server)."""
    from accounts.passwords import operator_password_set

    operator_password_set(user=User.objects.get(pk=older_hash.pk), password="a brand new passphrase")

    assert older_hash.check_password(DEFAULT_PASSWORD)  # what it read: the old one
    stored = User.objects.get(pk=older_hash.pk)
    assert stored.check_password("a brand new passphrase") and not stored.check_password(DEFAULT_PASSWORD)
