from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_delete, post_save


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and sessions"

    def ready(self) -> None:
        from accounts import checks, schema  # noqa: F401  (registers the deploy check, the OpenAPI auth extension)
        from accounts.models import User
        from accounts.services import user_claims_cache_forget

        # However a user row is saved or deleted (a service, the admin, a shell's user.save()),
        # the cached claims API requests and gateways rely on are dropped with it. Writes that
        # bypass the model (QuerySet.update, raw SQL) reach them within CLAIMS_CACHE_TTL.
        post_save.connect(user_claims_cache_forget, sender=User, dispatch_uid="accounts.claims.save")
        post_delete.connect(user_claims_cache_forget, sender=User, dispatch_uid="accounts.claims.delete")


class PortalAdminConfig(admin_apps.AdminConfig):
    """Django's admin app, with the site that is signed in to through the portal."""

    default = False  # named in INSTALLED_APPS; accounts' own config stays the default here
    default_site = "accounts.admin_site.PortalAdminSite"
