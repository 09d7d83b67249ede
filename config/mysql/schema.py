"""Unique constraints that MariaDB cannot express, made with generated columns instead.

MariaDB has no partial indexes (``UniqueConstraint(condition=...)``: one pending storage
request per cluster) and no functional indexes (``UniqueConstraint(Lower("email"))``), and
Django skips such constraints there without a word. Here each one becomes a unique index over
virtual generated columns that compute the key (``CASE WHEN <condition> THEN <key> END``:
NULL outside the condition, and NULLs never collide), so the database refuses what
PostgreSQL refuses, from the same migrations. A constraint this cannot build either is an
error at migrate, not a constraint silently missing. The generated columns copy the type of
what they compute: a migration that renames or retypes a column such a constraint reads
should remove the constraint before and add it back after.
"""

from __future__ import annotations

from django.db import NotSupportedError
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.backends.ddl_references import Statement, Table
from django.db.backends.mysql import schema as mysql_schema
from django.db.backends.utils import truncate_name
from django.db.models import UniqueConstraint
from django.db.models.sql import Query


class DatabaseSchemaEditor(mysql_schema.DatabaseSchemaEditor):
    sql_create_unique_generated = "ALTER TABLE %(table)s %(columns)s, ADD UNIQUE INDEX %(name)s (%(keys)s)"
    sql_delete_unique_generated = "ALTER TABLE %(table)s DROP INDEX %(name)s%(columns)s"

    # Django calls these three with the constraint's options as keywords: condition (SQL),
    # expressions, deferrable, include, opclasses, nulls_distinct.
    def _unique_sql(self, model, fields, name, **options):
        if self._unique_emulated(**options):
            self.deferred_sql.append(self._generated_unique_sql(model, fields=fields, name=name, **options))
            return None
        return super()._unique_sql(model, fields, name, **options)

    def _create_unique_sql(self, model, fields, name=None, **options):
        if name is not None and self._unique_emulated(**options):
            return self._generated_unique_sql(model, fields=fields, name=name, **options)
        return super()._create_unique_sql(model, fields, name=name, **options)

    def _delete_unique_sql(self, model, name, **options):
        if not self._unique_emulated(**options):
            return super()._delete_unique_sql(model, name, **options)
        return Statement(
            self.sql_delete_unique_generated,
            table=Table(model._meta.db_table, self.quote_name),
            name=self.quote_name(name),
            columns="".join(
                f", DROP COLUMN {self.quote_name(column)}"
                for column in self._generated_key_columns(model, name=name)
            ),
        )

    def remove_constraint(self, model, constraint):
        if isinstance(constraint, UniqueConstraint) and self._unique_emulated(
            condition=constraint.condition, expressions=constraint.expressions
        ):
            # Django's MySQL editor first indexes the constraint's leading foreign key, which a
            # composite index may have been serving; this index is over generated columns only.
            BaseDatabaseSchemaEditor.remove_constraint(self, model, constraint)
            return
        super().remove_constraint(model, constraint)

    def _unique_emulated(
        self,
        *,
        condition=None,
        expressions=None,
        deferrable=None,
        include=None,
        opclasses=(),
        nulls_distinct=None,
    ) -> bool:
        """Whether this constraint needs generated columns (and can have them)."""
        if not (condition or expressions) or self._unique_supported(
            condition=condition,
            expressions=expressions,
            deferrable=deferrable,
            include=include,
            nulls_distinct=nulls_distinct,
        ):
            return False
        if deferrable or include or opclasses or nulls_distinct is not None:
            raise NotSupportedError(
                f"{self.connection.display_name} cannot enforce a conditional or functional unique "
                "constraint that is also deferrable, covering, with opclasses or nulls_distinct."
            )
        return True

    def _generated_unique_sql(
        self, model, *, fields, name: str, condition=None, expressions=None, **_
    ) -> Statement:
        """``ALTER TABLE``: one virtual column per key part, and a unique index over them."""
        if expressions:
            compiler = Query(model, alias_cols=False).get_compiler(connection=self.connection)
            parts = []
            for expression in expressions.get_source_expressions():
                sql, params = compiler.compile(expression)
                parts.append((sql % tuple(map(self.quote_value, params)), expression.output_field))
        else:
            parts = [(self.quote_name(field.column), field) for field in fields]
        columns, keys = [], []
        for index, (sql, field) in enumerate(parts):
            column = self.quote_name(self._generated_key_column(name=name, index=index))
            value = f"CASE WHEN {condition} THEN {sql} END" if condition else sql
            columns.append(f"ADD COLUMN {column} {field.db_type(self.connection)} AS ({value}) VIRTUAL")
            keys.append(column)
        return Statement(
            self.sql_create_unique_generated,
            table=Table(model._meta.db_table, self.quote_name),
            name=self.quote_name(name),
            columns=", ".join(columns),
            keys=", ".join(keys),
        )

    def _generated_key_column(self, *, name: str, index: int) -> str:
        return truncate_name(f"{name}_key{index}", self.connection.ops.max_name_length())

    def _generated_key_columns(self, model, *, name: str) -> list[str]:
        """The generated columns of the constraint ``name``, one per field or expression."""
        constraint = next(constraint for constraint in model._meta.constraints if constraint.name == name)
        parts = len(constraint.expressions or constraint.fields)
        return [self._generated_key_column(name=name, index=index) for index in range(parts)]
