"""Manage the JWT signing keys in JWT_KEYS_DIR: ``rotate``, ``retire <kid>``, ``list``.

Rotation adds a signing key and keeps the previous ones for verification, so nobody is logged
out; retire an old key once the tokens it signed have expired (``JWT_REFRESH_TTL``): its tokens
then fail everywhere. Running processes pick changes up within seconds, without a restart.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from accounts.keys import CURRENT_KEY_FILE, key_file_created, keys_dir_add, keys_dir_read
from accounts.selectors import sessions_signed_by_count


def _created(keys_dir: Path, kid: str) -> datetime:
    created = key_file_created(keys_dir, kid)
    if created is None:
        raise CommandError(f"The file of key {kid} is missing from {keys_dir}.")
    return created


def _successor_created(keys_dir: Path, kid: str, keys: dict) -> datetime | None:
    """When the key that replaced ``kid`` as the signing key was made (None: none did, as far as we know)."""
    created = _created(keys_dir, kid)
    newer = [_created(keys_dir, other) for other in keys if _created(keys_dir, other) > created]
    return min(newer) if newer else None


class Command(BaseCommand):
    help = "Rotate, retire or list the JWT signing keys kept in JWT_KEYS_DIR."
    requires_system_checks: list = []

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("rotate", help="Create a new signing key; older keys stay for verification.")
        retire = actions.add_parser("retire", help="Delete a verification-only key: its tokens stop working.")
        retire.add_argument("kid")
        retire.add_argument(
            "--force",
            action="store_true",
            help="Retire it even though live sessions still hold refresh tokens it signed (they end).",
        )
        actions.add_parser("list", help="Show the keys and which one signs.")

    def handle(self, *args, action: str, **options) -> None:
        if settings.JWT_ALGORITHM == "HS256":
            raise CommandError("JWT_ALGORITHM=HS256 uses JWT_SECRET; there are no key files to manage.")
        if settings.JWT_PRIVATE_KEYS:
            self.stderr.write("Note: JWT_PRIVATE_KEYS is set and takes precedence over JWT_KEYS_DIR.")
        keys_dir = Path(settings.JWT_KEYS_DIR)
        try:
            if action == "rotate":
                keys_dir_read(keys_dir)  # a directory the portal cannot read gets no new key either
                kid = keys_dir_add(keys_dir, algorithm=settings.JWT_ALGORITHM)
                self.stdout.write(f"New signing key {kid} in {keys_dir}")
            elif action == "retire":
                self._retire(keys_dir, options["kid"], force=options["force"])
            else:
                self._list(keys_dir)
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error

    def _retire(self, keys_dir: Path, kid: str, *, force: bool) -> None:
        current, keys = keys_dir_read(keys_dir)
        if kid not in keys:
            raise CommandError(f"No key {kid!r} in {keys_dir}.")
        if kid == current or len(keys) == 1:
            raise CommandError(f"{kid} is the signing key: run `jwt_keys rotate` first, then retire it.")
        holding = sessions_signed_by_count(signed_until=_successor_created(keys_dir, kid, keys))
        if holding and not force:
            raise CommandError(
                f"{holding} live session(s) may still hold a refresh token signed by {kid}: retiring it "
                "would sign them out. Wait until they have refreshed or expired (JWT_REFRESH_TTL), or use --force."
            )
        (keys_dir / f"{kid}.pem").unlink()
        keys_dir.touch()  # running processes notice the directory changed
        ended = f"; {holding} session(s) that may hold its refresh tokens end" if holding else ""
        self.stdout.write(f"Retired {kid}: tokens it signed are no longer accepted{ended}.")

    def _list(self, keys_dir: Path) -> None:
        current, keys = keys_dir_read(keys_dir)
        if not keys:
            self.stdout.write(f"No keys in {keys_dir}.")
            return
        for kid in keys:
            created = _created(keys_dir, kid)
            role = "signing" if kid == current else "verification"
            self.stdout.write(f"{kid}  {role:<12}  {created:%Y-%m-%d %H:%M:%S}Z")
        if current is None:
            self.stdout.write(f"(no {CURRENT_KEY_FILE} file: the newest key signs)")
