"""The MySQL/MariaDB database backend: Django's, through PyMySQL, made to behave like PostgreSQL.

``DATABASE_URL=mysql://...`` (or ``mariadb://``) selects it (``config.env``). What it adds to
Django's backend: the unique constraints MariaDB cannot express (``schema.py``) and a check
that the database compares text byte for byte (``validation.py``).
"""
