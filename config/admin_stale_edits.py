"""Two operators on the same admin page: a save from a page that no longer shows the stored row
is refused, with nothing written.

Django's admin compares what a page posts with the row as read when the POST arrives, so on a page
opened before someone else saved, each field the other operator changed counts as changed again
and is written back: an unrelated edit re-scales a cluster, re-activates a user or a client,
loosens a sign-in policy again. The rule, stated here once: a change form carries the values it
showed (Django's ``show_hidden_initial``), and a save is refused when an editable field's stored
value is no longer the one shown, whether or not the operator touched that field (what they chose
rested on what they saw). Reloading the page shows the row as it is; the operator decides again.

The form asks it while validating, to point at the field, and the save asks it again of the row
it locks in its own transaction (``row_locked_unchanged``, or a service's locked row handed to
``SeenValuesForm.stale_refuse``): two saves at once cannot both pass it.

Then ``changed_data`` is what the operator changed on the page, not what differs from the row.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.forms.models import model_to_dict
from django.forms.utils import pretty_name
from django.utils.text import capfirst

STALE_FIELD = "“{label}” was changed by someone else while you edited: reload the page to see it."
ROW_GONE = "This {model} was removed by someone else while you edited."


class SeenValuesForm:
    """A model form's mixin: when it changes a stored row, it carries the values it showed, and
    refuses a save when the row holds other values now. A POST that does not carry them (no admin
    page sent it: a script) is compared with the row as it is, as Django does."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen_fields = self._seen_fields() if self.instance.pk is not None else []
        for name in self.seen_fields:
            self.fields[name].show_hidden_initial = True

    def _seen_fields(self) -> list[str]:
        """The fields the operator sees and may edit that are the row's own."""
        opts = self.instance._meta
        own = {field.name for field in [*opts.concrete_fields, *opts.many_to_many] if not field.primary_key}
        editable = [
            name
            for name, field in self.fields.items()
            if name in own and not field.disabled and not field.widget.is_hidden
        ]
        if self.is_bound and not any(self.add_initial_prefix(name) in self.data for name in editable):
            return []
        return editable

    def _shown(self, name: str):
        hidden = self.fields[name].hidden_widget()
        return hidden.value_from_datadict(self.data, self.files, self.add_initial_prefix(name))

    def stale_fields(self, *, stored: Model) -> list[str]:
        """The fields whose value in ``stored`` is not the one the page showed."""
        if not self.is_bound or not self.seen_fields:
            return []
        values = model_to_dict(stored, fields=self.seen_fields)
        return [
            name
            for name in self.seen_fields
            if name in values and self.fields[name].has_changed(values[name], self._shown(name))
        ]

    def stale_message(self, name: str) -> str:
        return STALE_FIELD.format(label=capfirst(self.fields[name].label or pretty_name(name)))

    def stale_refuse(self, *, stored: Model) -> None:
        """ValidationError when ``stored`` (the row as the save locked it) is not what the page showed."""
        stale = self.stale_fields(stored=stored)
        if stale:
            raise ValidationError([self.stale_message(name) for name in stale])

    def clean(self):
        cleaned = super().clean()
        # Before the form's values are put on it, the instance is the row as read for this POST.
        for name in self.stale_fields(stored=self.instance):
            self.add_error(name, self.stale_message(name))
        return cleaned


class SeenValuesModelForm(SeenValuesForm, forms.ModelForm):
    """The model admin's own form (``ModelAdmin.form``), carrying what it showed."""


def row_locked_unchanged(*, form: SeenValuesForm, row: Model, gone: str = "") -> Model:
    """``row`` as stored, locked until the save's transaction ends: a ValidationError when the page
    of ``form`` no longer shows it, or when it is gone (``gone``: what to say then)."""
    stored = type(row)._default_manager.select_for_update().filter(pk=row.pk).first()
    if stored is None:
        raise ValidationError(gone or ROW_GONE.format(model=row._meta.verbose_name))
    form.stale_refuse(stored=stored)
    return stored
