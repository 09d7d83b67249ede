#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        # A wrong or missing setting: its message names the variable (README "Configuration"),
        # which a traceback of Django's settings machinery would only bury.
        sys.exit(f"Configuration error: {error}")


if __name__ == "__main__":
    main()
