"""``manage.py createsuperuser`` that never makes an operator nobody can sign in as.

Django's, with ``--noinput`` and no ``DJANGO_SUPERUSER_PASSWORD``, creates the account without a
password (and a password reset sends no email to such an account), takes a password its
validators would refuse, and without a terminal skips the account yet exits 0.
"""

from __future__ import annotations

import os
import sys

from django.contrib.auth.management.commands import createsuperuser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from accounts.models import User


class Command(createsuperuser.Command):
    def handle(self, *args, **options) -> None:
        if options["interactive"] and not sys.stdin.isatty():
            raise CommandError(
                "createsuperuser asks for the email, name and password: run it in a terminal "
                "(kubectl exec -it), or with --noinput, --email, --name and DJANGO_SUPERUSER_PASSWORD."
            )
        if not options["interactive"]:
            password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
            if not password:
                raise CommandError(
                    "--noinput needs DJANGO_SUPERUSER_PASSWORD: without it nobody could sign in."
                )
            # As the account will be (the similarity check compares the email and the name).
            email = options.get("email") or os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
            name = options.get("name") or os.environ.get("DJANGO_SUPERUSER_NAME", "")
            try:
                validate_password(password, User(email=email, name=name))
            except ValidationError as error:
                raise CommandError("DJANGO_SUPERUSER_PASSWORD: " + " ".join(error.messages)) from error
        super().handle(*args, **options)
