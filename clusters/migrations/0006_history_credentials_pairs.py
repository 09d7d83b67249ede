"""Key rotations in a cluster's history become [before, after] pairs, like every other change."""

from django.db import migrations

PAIRS = {
    "rotated": ["old key", "new key"],
    "rotation started": ["old key", "old and new keys"],
    "rotation finished": ["old and new keys", "new key"],
}


def _convert(apps, mapping) -> None:
    ClusterChange = apps.get_model("clusters", "ClusterChange")
    for change in ClusterChange.objects.filter(action__startswith="credentials").iterator():
        value = (change.changes or {}).get("credentials")
        key = tuple(value) if isinstance(value, list) else value
        if key in mapping:
            change.changes = {**change.changes, "credentials": mapping[key]}
            change.save(update_fields=["changes"])


def to_pairs(apps, schema_editor) -> None:
    _convert(apps, PAIRS)


def to_words(apps, schema_editor) -> None:
    _convert(apps, {tuple(pair): word for word, pair in PAIRS.items()})


class Migration(migrations.Migration):
    dependencies = [("clusters", "0005_teams_and_sign_in_policy")]

    operations = [migrations.RunPython(to_pairs, to_words)]
