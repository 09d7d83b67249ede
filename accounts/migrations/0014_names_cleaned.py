"""Names stored before today's rule (config.text) are cleaned to it: a name the rule refuses would
otherwise make every later save of its row fail, for a change that has nothing to do with it."""

from django.core.exceptions import ValidationError
from django.db import migrations

from config.text import display_text_clean, display_text_validator

# The model, and the name a row gets when nothing of its own is left (the user's may be empty).
FALLBACK = {"User": "", "PersonalAccessToken": "token", "Passkey": "passkey"}


def _refused(name: str) -> bool:
    try:
        display_text_validator(name)
    except ValidationError:
        return True
    return False


def names_clean(apps, schema_editor) -> None:
    for model_name, fallback in FALLBACK.items():
        model = apps.get_model("accounts", model_name)
        for row in model.objects.exclude(name="").only("pk", "name").iterator():
            if _refused(row.name):
                model.objects.filter(pk=row.pk).update(name=display_text_clean(row.name) or fallback)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0013_names_visible_characters")]

    operations = [migrations.RunPython(names_clean, migrations.RunPython.noop)]
