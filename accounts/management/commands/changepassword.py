"""``manage.py changepassword <email>`` as an operator's "Set password" in the admin: the password
becomes a new version (accounts.locks), and every session and personal access token of the
account ends (whoever knew the old password may hold one). Django's own saved the hash alone."""

from __future__ import annotations

import sys

from django.contrib.auth.management.commands import changepassword
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from accounts.emails import email_canonical_or_none
from accounts.models import User
from accounts.passwords import operator_password_set

ATTEMPTS = 3


class Command(changepassword.Command):
    help = (
        "Set the password of the account with this email; its sessions and personal access tokens "
        "end, as when an operator sets it in the admin."
    )

    def add_arguments(self, parser) -> None:
        # Not Django's: its "username" is optional and defaults to the shell's user.
        parser.add_argument("username", metavar="email", help="The account's email.")
        parser.add_argument(
            "--database", default="default", help="Nominates a database. Defaults to the default one."
        )

    def handle(self, *args, **options) -> str:
        given = options["username"] or ""
        user = User.objects.filter(email=email_canonical_or_none(given) or "").first()
        if user is None:
            raise CommandError(f"No account has the email {given!r}.")
        if not sys.stdin.isatty():  # getpass would fail with a traceback (kubectl exec without -it)
            raise CommandError(
                "changepassword asks for the password twice: run it in a terminal (kubectl exec -it)."
            )
        self.stdout.write(f"Changing password for user '{user}'")
        for _ in range(ATTEMPTS):
            password, again = self._get_pass(), self._get_pass("Password (again): ")
            if password != again:
                self.stdout.write("Passwords do not match. Please try again.")
                continue
            try:
                validate_password(password, user)
            except ValidationError as error:
                self.stderr.write("\n".join(error.messages))
                continue
            operator_password_set(user=user, password=password)
            return f"Password changed for '{user}'; their sessions and personal access tokens have ended."
        raise CommandError(f"Aborting password change for user '{user}' after {ATTEMPTS} attempts")
