"""Django's MySQL backend on PyMySQL, with the schema editor and checks of this package.

PyMySQL stands in for mysqlclient's ``MySQLdb`` module: pure Python, so it installs from a
wheel wherever Python runs (README, "MySQL and MariaDB").
"""

import pymysql

pymysql.install_as_MySQLdb()

from django.db.backends.mysql import base as mysql_base  # noqa: E402  (after the MySQLdb stand-in)

from config.mysql.schema import DatabaseSchemaEditor  # noqa: E402
from config.mysql.validation import DatabaseValidation  # noqa: E402


class DatabaseWrapper(mysql_base.DatabaseWrapper):
    SchemaEditorClass = DatabaseSchemaEditor
    validation_class = DatabaseValidation
