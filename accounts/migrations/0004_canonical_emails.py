"""Store every user's email in its canonical form (accounts/emails.py, as of this migration).

Rows whose address has no canonical form, or whose canonical form another user already has,
are left as they are and reported: two accounts are never merged behind an operator's back.
Those users cannot sign in with a password until an operator fixes the address in the admin.
"""

import unicodedata

from django.db import migrations


def _canonical(value):
    text = unicodedata.normalize("NFKC", value or "").strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return None
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    canonical = f"{local}@{domain}".lower()
    return canonical if canonical.isascii() and len(canonical) <= 254 else None


def canonicalise(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    taken = set(User.objects.values_list("email", flat=True))
    for user in User.objects.order_by("pk"):
        canonical = _canonical(user.email)
        if canonical == user.email:
            continue
        if canonical is None:
            print(f"\n  accounts.User {user.pk}: {user.email!r} has no canonical form; left as it is")
        elif canonical in taken:
            print(f"\n  accounts.User {user.pk}: {user.email!r} collides with {canonical!r}; left as it is")
        else:
            taken.discard(user.email)
            taken.add(canonical)
            User.objects.filter(pk=user.pk).update(email=canonical)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_googleaccount")]

    operations = [migrations.RunPython(canonicalise, migrations.RunPython.noop)]
