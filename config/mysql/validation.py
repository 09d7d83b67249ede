"""``manage.py check --database default`` (and ``migrate``): text must compare byte for byte.

MariaDB's and MySQL's default collations ignore case and accents ('A' = 'a', 'é' = 'e'), so
a unique column would refuse, and a lookup would find, a different passkey credential ID or
email than PostgreSQL does. The portal needs a binary utf8mb4 collation on the database (the
default for new tables) and on every text column: ``CREATE DATABASE portal CHARACTER SET
utf8mb4 COLLATE utf8mb4_bin`` before the first migrate (README, "MySQL and MariaDB").
"""

from __future__ import annotations

from django.core import checks
from django.db.backends.mysql import validation as mysql_validation

COLUMNS_LISTED_MAX = 5


def collation_is_binary(collation: str) -> bool:
    return collation.startswith("utf8mb4_") and collation.endswith("_bin")


class DatabaseValidation(mysql_validation.DatabaseValidation):
    def check(self, **kwargs):
        issues = super().check(**kwargs)
        if not self.connection.mysql_is_mariadb:
            # Said here, before migrate fails half-way on the first index MySQL refuses.
            issues.append(
                checks.Error(
                    f"{self.connection.display_name} {self.connection.mysql_version} is not supported: "
                    "its 3072-byte index limit refuses the unique passkey credential IDs.",
                    hint="Use MariaDB 10.5 or later, as Django supports it (README, 'MySQL and MariaDB').",
                    id="portal.mysql.E003",
                )
            )
        issues.extend(self._check_collation())
        return issues

    def _check_collation(self) -> list[checks.CheckMessage]:
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT DATABASE(), @@character_set_database, @@collation_database")
            database, charset, collation = cursor.fetchone()
            cursor.execute(
                "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND COLLATION_NAME IS NOT NULL ORDER BY 1, 2"
            )
            columns = [row for row in cursor.fetchall() if not collation_is_binary(row[2])]
        issues = []
        if not collation_is_binary(collation):
            issues.append(
                checks.Error(
                    f"Database {database!r} ({self.connection.alias}) defaults to {charset}/{collation}, "
                    "which compares text ignoring case or accents, unlike PostgreSQL.",
                    hint=f"ALTER DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin "
                    "(new tables), then convert the existing ones.",
                    id="portal.mysql.E001",
                )
            )
        if columns:
            listed = ", ".join(
                f"{table}.{column} ({name})" for table, column, name in columns[:COLUMNS_LISTED_MAX]
            )
            more = (
                f" and {len(columns) - COLUMNS_LISTED_MAX} more" if len(columns) > COLUMNS_LISTED_MAX else ""
            )
            issues.append(
                checks.Error(
                    f"{len(columns)} text column(s) of {database!r} compare ignoring case or accents: {listed}{more}.",
                    hint="ALTER TABLE <table> CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, for each table.",
                    id="portal.mysql.E002",
                )
            )
        return issues
