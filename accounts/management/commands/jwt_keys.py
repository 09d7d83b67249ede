"""Manage the JWT signing keys in JWT_KEYS_DIR: ``add``, ``promote <kid>``, ``rotate``,
``retire <kid>``, ``list``.

Adding a key publishes it (it verifies) without signing with it; promote it once the JWKS
caches of other services have expired, and every service knows it before it meets a token it
signed. ``rotate`` does both at once, for deployments without such services. Older keys stay
for verification, so nobody is logged out; retire one once the tokens it signed have expired:
``JWT_REFRESH_TTL`` after it stopped signing (a refresh token is re-signed by the signing key at
each refresh, so sessions in use leave it sooner; ``retire`` checks). Running processes pick
changes up within seconds, without a restart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.keys import (
    CURRENT_KEY_FILE,
    key_file_created,
    key_signing_since,
    keys_dir_add,
    keys_dir_pending,
    keys_dir_promote,
    keys_dir_publish,
    keys_dir_read,
    keys_dir_retire,
)
from accounts.selectors import sessions_signed_by_count
from accounts.tokens import KEYS_DIR_RECHECK_SECONDS, key_ring_load
from accounts.views import JWKS_MAX_AGE

# Once every process publishes a new key and every JWKS cached before has expired, no service
# can meet a token signed by the key without knowing it.
PUBLISHED_EVERYWHERE_AFTER = timedelta(seconds=KEYS_DIR_RECHECK_SECONDS + JWKS_MAX_AGE)


def _created(keys_dir: Path, kid: str) -> datetime:
    created = key_file_created(keys_dir, kid)
    if created is None:
        raise CommandError(f"The file of key {kid} is missing from {keys_dir}.")
    return created


def _time(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}Z"


def _stopped_signing(keys_dir: Path, kid: str, keys: dict) -> datetime | None:
    """When ``kid`` stopped signing: the next time another key began to (None: unknown)."""
    since = key_signing_since(keys_dir, kid) or _created(keys_dir, kid)
    later = [
        began for other in keys if (began := key_signing_since(keys_dir, other)) is not None and began > since
    ]
    return min(later) if later else None


class Command(BaseCommand):
    help = "Add, promote, rotate, retire or list the JWT signing keys kept in JWT_KEYS_DIR."
    requires_system_checks: list = []

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser(
            "add", help="Create a key that only verifies (published in the JWKS) until `promote`."
        )
        promote = actions.add_parser(
            "promote", help="Make a key the signing key: after `add`, once JWKS caches have expired."
        )
        promote.add_argument("kid")
        actions.add_parser(
            "rotate",
            help="Create a key that signs at once (add + promote); older keys stay for verification.",
        )
        retire_help = (
            "Delete a verification-only key: its tokens stop working. Its last refresh tokens expire "
            "JWT_REFRESH_TTL after it stopped signing (each refresh re-signs with the signing key); "
            "until then it refuses while live sessions may hold one."
        )
        retire = actions.add_parser("retire", help=retire_help, description=retire_help)
        retire.add_argument("kid")
        retire.add_argument(
            "--force",
            action="store_true",
            help="Retire it even though live sessions still hold refresh tokens it signed (they end).",
        )
        actions.add_parser("list", help="Show the keys: which one signs, which only verify.")

    def handle(self, *args, action: str, **options) -> None:
        if settings.JWT_ALGORITHM == "HS256":
            raise CommandError("JWT_ALGORITHM=HS256 uses JWT_SECRET; there are no key files to manage.")
        if settings.JWT_PRIVATE_KEYS:  # the keys the portal uses are not in the folder
            self._private_keys_setting(action)
            return
        keys_dir = Path(settings.JWT_KEYS_DIR)
        try:
            if action == "rotate":
                self._rotate(keys_dir)
            elif action == "add":
                self._add(keys_dir)
            elif action == "promote":
                self._promote(keys_dir, options["kid"])
            elif action == "retire":
                self._retire(keys_dir, options["kid"], force=options["force"])
            else:
                self._list(keys_dir)
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error

    def _private_keys_setting(self, action: str) -> None:
        """With ``JWT_PRIVATE_KEYS`` the folder is unused: a key made there would sign nothing
        (and would start signing, unannounced, the day the setting is removed)."""
        if action != "list":
            raise CommandError(
                "JWT_PRIVATE_KEYS is set: the portal signs and verifies with the keys it holds, not with "
                f"{settings.JWT_KEYS_DIR}. Rotate by editing it in two rollouts (README: Key rotation)."
            )
        try:
            ring = key_ring_load()
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from error
        for kid in ring.verification:
            role = "signing" if kid == ring.signing.kid else "verification"
            self.stdout.write(f"{kid}  {role:<12}  (JWT_PRIVATE_KEYS)")

    def _rotate(self, keys_dir: Path) -> None:
        keys_dir_read(keys_dir)  # a directory the portal cannot read gets no new key either
        kid = keys_dir_add(keys_dir, algorithm=settings.JWT_ALGORITHM)
        self.stdout.write(
            f"New signing key {kid} in {keys_dir}; it signs at once. A service that caches the JWKS "
            f"(up to {JWKS_MAX_AGE} s) and does not fetch it again for an unknown kid may refuse its "
            "tokens meanwhile: `jwt_keys add`, then `jwt_keys promote` once caches have expired, avoids that."
        )

    def _add(self, keys_dir: Path) -> None:
        current, keys = keys_dir_read(keys_dir)
        if not keys:
            raise CommandError(f"No key in {keys_dir} yet: `jwt_keys rotate` creates the first signing key.")
        if current is None:  # else the new key, the newest, would sign at once
            raise CommandError(
                f"{keys_dir} has no {CURRENT_KEY_FILE} file naming the signing key: "
                "name it first with `jwt_keys promote <kid>` (`jwt_keys list` shows the keys)."
            )
        kid = keys_dir_publish(keys_dir, algorithm=settings.JWT_ALGORITHM)
        safe_from = _created(keys_dir, kid) + PUBLISHED_EVERYWHERE_AFTER
        self.stdout.write(
            f"Added {kid} to {keys_dir}: it is published in the JWKS and verifies, but does not sign "
            f"({current} still does). Promote it once the JWKS caches have expired, from {_time(safe_from)} "
            f"(Cache-Control: max-age={JWKS_MAX_AGE}): manage.py jwt_keys promote {kid}"
        )

    def _promote(self, keys_dir: Path, kid: str) -> None:
        current, keys = keys_dir_read(keys_dir)
        if kid not in keys:
            raise CommandError(f"No key {kid!r} in {keys_dir}: `jwt_keys list` shows the keys.")
        if kid == current:
            self.stdout.write(f"{kid} is already the signing key.")
            return
        pending = kid in keys_dir_pending(keys_dir)
        keys_dir_promote(keys_dir, kid=kid)
        previous = f"; {current} only verifies from now on" if current else ""
        self.stdout.write(f"{kid} is the signing key (running processes switch within seconds){previous}.")
        safe_from = _created(keys_dir, kid) + PUBLISHED_EVERYWHERE_AFTER
        if pending and timezone.now() < safe_from:
            self.stderr.write(
                f"Warning: {kid} was added less than {int(PUBLISHED_EVERYWHERE_AFTER.total_seconds())} s "
                "ago: a service that cached the JWKS before and does not fetch it again for an unknown "
                f"kid may refuse its tokens until {_time(safe_from)}."
            )

    def _retire(self, keys_dir: Path, kid: str, *, force: bool) -> None:
        current, keys = keys_dir_read(keys_dir)
        if kid not in keys:
            raise CommandError(f"No key {kid!r} in {keys_dir}.")
        if kid == current or len(keys) == 1:
            raise CommandError(
                f"{kid} is the signing key: make another key sign first (`jwt_keys add` and "
                "`jwt_keys promote`, or `jwt_keys rotate`), then retire it."
            )
        if kid in keys_dir_pending(keys_dir):  # it has never signed: no token holds it
            keys_dir_retire(keys_dir, kid=kid)
            self.stdout.write(f"Retired {kid}: it never signed, so no token is affected.")
            return
        holding = sessions_signed_by_count(signed_until=_stopped_signing(keys_dir, kid, keys))
        if holding and not force:
            raise CommandError(
                f"{holding} live session(s) may still hold a refresh token signed by {kid}: retiring it "
                "would sign them out. Wait until they have refreshed or expired (at most JWT_REFRESH_TTL "
                "after it stopped signing), or use --force."
            )
        keys_dir_retire(keys_dir, kid=kid)
        ended = f"; {holding} session(s) that may hold its refresh tokens end" if holding else ""
        self.stdout.write(f"Retired {kid}: tokens it signed are no longer accepted{ended}.")

    def _list(self, keys_dir: Path) -> None:
        current, keys = keys_dir_read(keys_dir)
        if not keys:
            self.stdout.write(f"No keys in {keys_dir}.")
            return
        pending = keys_dir_pending(keys_dir)
        for kid in keys:
            created = _created(keys_dir, kid)
            role = "signing" if kid == current else "verification"
            note = ""
            if kid in pending:
                safe_from = created + PUBLISHED_EVERYWHERE_AFTER
                when = "now" if timezone.now() >= safe_from else f"from {_time(safe_from)}"
                note = f"  only verifies, never signed: safe to promote {when}"
            self.stdout.write(f"{kid}  {role:<12}  {_time(created)}{note}")
        if current is None:
            self.stdout.write(f"(no {CURRENT_KEY_FILE} file: the newest key signs)")
