"""Routes of the token service (mounted at the site root: /api/auth/... and /.well-known/...)."""

urlpatterns: list = []
