"""MySQL/MariaDB: DATABASE_URL=mysql://..., and a database that compares and refuses like PostgreSQL.

The tests named ``test_on_mariadb_...`` need the suite to run on MariaDB (``DATABASE_URL=mysql://``,
the third pass of .ci/run); the others run on every database and hold on each alike.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import IntegrityError, connection, connections, transaction

from accounts.models import Passkey, User
from clusters.models import Client, StorageExpansion
from config.env import database_from_url

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _on_mariadb() -> None:
    if connection.vendor != "mysql":
        pytest.skip("needs the suite on MariaDB/MySQL (DATABASE_URL=mysql://...)")


@pytest.mark.parametrize("scheme", ["mysql", "mariadb"])
def test_a_mysql_url_gives_utf8mb4_read_committed_strict_mode_and_a_binary_test_collation(scheme):
    database = database_from_url(
        f"{scheme}://app:s%40cret@db.internal:3307/portal"
        "?connect_timeout=10&ssl_ca=/etc/ssl/ca.pem&ssl_verify_identity=true"
    )
    assert database["ENGINE"] == "config.mysql"
    assert (database["USER"], database["PASSWORD"], database["HOST"], database["PORT"], database["NAME"]) == (
        "app",
        "s@cret",
        "db.internal",
        "3307",
        "portal",
    )
    assert database["OPTIONS"] == {
        "charset": "utf8mb4",
        "isolation_level": "read committed",
        "init_command": "SET sql_mode = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION'",
        "connect_timeout": 10,  # a number, as the driver wants it
        "ssl_ca": "/etc/ssl/ca.pem",
        "ssl_verify_identity": True,
    }
    assert database["TEST"] == {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_bin"}


def test_mysql_connections_give_up_connecting_after_5_seconds_unless_told_otherwise(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings; from django.db import connection; "
        "print(settings.DATABASES['default']['OPTIONS']['connect_timeout'], connection.vendor)"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="1",
        PORTAL_VAR_DIR=str(tmp_path),
        PORTAL_ENV_FILE="",
        DATABASE_URL="mysql://portal@db.internal:3306/portal",
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["5", "mysql"]


# --- Every database compares text byte for byte, as PostgreSQL does --------------------------


def test_values_that_differ_only_in_case_or_accents_are_different_rows(db, user_factory):
    """Written below the services (bulk_create): the database alone keeps them apart."""
    User.objects.bulk_create(
        [User(email=email) for email in ("rene@example.com", "rené@example.com", "ſtaff1@example.com")]
    )
    User.objects.bulk_create([User(email="staff1@example.com")])
    assert User.objects.get(email="rene@example.com").email == "rene@example.com"
    assert User.objects.get(email="staff1@example.com").email == "staff1@example.com"
    assert not User.objects.filter(email="RENE@example.com").exists()

    # Passkey credential IDs are base64url: case is part of the ID.
    owner = user_factory()
    Passkey.objects.bulk_create(
        [
            Passkey(user=owner, name=name, credential_id=credential_id, public_key=b"key")
            for name, credential_id in (("lower", "q2xldmVy"), ("upper", "Q2xldmVy"))
        ]
    )
    assert Passkey.objects.get(credential_id="Q2xldmVy").name == "upper"
    assert Passkey.objects.get(credential_id="q2xldmVy").name == "lower"


@pytest.mark.parametrize("slug", ["Client1", "clïent1"])
def test_the_database_refuses_a_slug_that_is_not_lower_case_ascii(db, slug):
    Client.objects.bulk_create([Client(slug="client1", name="One")])
    with pytest.raises(IntegrityError), transaction.atomic():
        Client.objects.bulk_create([Client(slug=slug, name="Look-alike")])
    assert Client.objects.get(slug="client1").name == "One"


# --- MariaDB only -------------------------------------------------------------------------------


def _table_state(table: str) -> tuple[set[str], set[str]]:
    with connection.cursor() as cursor:
        indexes = set(connection.introspection.get_constraints(cursor, table))
        columns = {column.name for column in connection.introspection.get_table_description(cursor, table)}
    return indexes, columns


@pytest.mark.django_db(transaction=True)
def test_on_mariadb_a_conditional_unique_constraint_is_a_generated_column_that_migrations_can_remove(
    cluster1, client1
):
    _on_mariadb()
    constraint = next(c for c in StorageExpansion._meta.constraints if c.name.endswith("one_pending"))
    table = StorageExpansion._meta.db_table
    before = _table_state(table)
    assert constraint.name in before[0] and f"{constraint.name}_key0" in before[1]

    with connection.schema_editor() as editor:
        editor.remove_constraint(StorageExpansion, constraint)
    try:
        indexes, columns = _table_state(table)
        assert constraint.name not in indexes and f"{constraint.name}_key0" not in columns
        assert len(indexes) == len(before[0]) - 1  # nothing added in its place
        StorageExpansion.objects.create(cluster=cluster1, from_gi=10, requested_gi=20)
        StorageExpansion.objects.create(cluster=cluster1, from_gi=10, requested_gi=30)  # unguarded now
    finally:
        StorageExpansion.objects.all().delete()
        with connection.schema_editor() as editor:
            editor.add_constraint(StorageExpansion, constraint)

    assert _table_state(table) == before
    # Outside the condition nothing collides: requests done or cancelled stay, one may wait.
    for state in ("done", "cancelled", "done"):
        StorageExpansion.objects.create(
            cluster=cluster1, from_gi=10, requested_gi=20, state=state, resolved_at="2026-01-01T00:00:00Z"
        )
    StorageExpansion.objects.create(cluster=cluster1, from_gi=10, requested_gi=20)
    with pytest.raises(IntegrityError), transaction.atomic():
        StorageExpansion.objects.create(cluster=cluster1, from_gi=10, requested_gi=40)


def _check_database(url: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_"))}
    env.update(DJANGO_DEBUG="1", PORTAL_VAR_DIR=str(tmp_path), PORTAL_ENV_FILE="", DATABASE_URL=url)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--database", "default"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db(transaction=True)
def test_on_mariadb_check_fails_on_a_database_that_ignores_case_and_accents(tmp_path):
    _on_mariadb()
    settings = connection.settings_dict
    server = f"mysql://{quote(settings['USER'])}:{quote(settings['PASSWORD'])}@{settings['HOST']}:{settings['PORT']}"
    scratch = f"{settings['NAME']}_ci_{uuid.uuid4().hex[:6]}"[:64]
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{scratch}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        cursor.execute(f"CREATE TABLE `{scratch}`.`people` (`email` varchar(254) NOT NULL UNIQUE)")
        insert = f"INSERT INTO `{scratch}`.`people` VALUES (%s)"  # noqa: S608  (the test's own name)
        cursor.execute(insert, ["rene@example.com"])
        with pytest.raises(IntegrityError):  # what the check is about
            cursor.execute(insert, ["RENÉ@example.com"])
    try:
        result = _check_database(f"{server}/{scratch}", tmp_path)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE `{scratch}`")
    assert result.returncode != 0
    assert "portal.mysql.E001" in result.stderr and "utf8mb4_general_ci" in result.stderr
    assert "portal.mysql.E002" in result.stderr and "people.email" in result.stderr

    # The suite's own database, made as the README says, passes.
    passing = _check_database(f"{server}/{settings['NAME']}", tmp_path)
    assert passing.returncode == 0, passing.stderr
    assert "portal.mysql" not in passing.stderr + passing.stdout


def test_on_mariadb_the_checks_refuse_mysql_before_a_migration_could_fail_half_way(db, monkeypatch):
    _on_mariadb()
    wrapper = connections["default"]  # the backend itself: django.db.connection is a proxy to it
    assert not [issue for issue in wrapper.validation.check() if issue.id == "portal.mysql.E003"]

    monkeypatch.setitem(wrapper.__dict__, "mysql_is_mariadb", False)  # what a MySQL server reports

    refused = [issue for issue in wrapper.validation.check() if issue.id == "portal.mysql.E003"]
    assert len(refused) == 1 and "not supported" in refused[0].msg and "MariaDB" in refused[0].hint


@pytest.mark.django_db
def test_on_mariadb_the_system_checks_warn_of_nothing():
    """A database made as the README says passes ``check --fail-level WARNING`` (no warning an
    operator would have to look up and judge harmless)."""
    from django.core.management import call_command

    _on_mariadb()
    call_command("check", "--database", "default", "--fail-level", "WARNING")
