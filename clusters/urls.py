"""Routes of the clusters API (mounted under /api/)."""

urlpatterns: list = []
