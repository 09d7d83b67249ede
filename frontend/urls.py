"""The browser app's shell (served at /)."""

urlpatterns: list = []
