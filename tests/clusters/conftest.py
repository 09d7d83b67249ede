"""Clients, clusters and users with grants, and an API client signed in as a given user."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from clusters.models import Client, Cluster, Grant
from clusters.services import client_create, cluster_create, grant_set


@pytest.fixture
def client_for(bearer_client) -> Callable[[User], APIClient]:
    """An API client signed in as ``user`` for real: password login, then ``Authorization: Bearer``.

    Grants are read from the database on every request, so a client made before a grant
    change sees the change at once.
    """
    return bearer_client


@pytest.fixture
def client1(db) -> Client:
    return client_create(slug="client1", name="Client One")


@pytest.fixture
def client2(db) -> Client:
    return client_create(slug="client2", name="Client Two")


@pytest.fixture
def cluster1(client1) -> Cluster:
    return cluster_create(client=client1, slug="main", actor=None, replicas=2).cluster


@pytest.fixture
def cluster2(client2) -> Cluster:
    return cluster_create(client=client2, slug="main", actor=None, replicas=1).cluster


@pytest.fixture
def user1(user_factory, client1) -> User:
    """client1's operator (the seed's client1 user)."""
    user = user_factory(email="client1@example.com", name="Client One User")
    grant_set(user=user, client=client1, role=Grant.Role.OPERATOR)
    return user


@pytest.fixture
def user2(user_factory, client2) -> User:
    user = user_factory(email="client2@example.com", name="Client Two User")
    grant_set(user=user, client=client2, role=Grant.Role.OPERATOR)
    return user


@pytest.fixture
def viewer1(user_factory, client1) -> User:
    user = user_factory(email="viewer1@example.com", name="Viewer One")
    grant_set(user=user, client=client1, role=Grant.Role.VIEWER)
    return user


@pytest.fixture
def operator_staff(user_factory) -> User:
    return user_factory(email="ops@example.com", name="Ops", is_staff=True, is_operator=True)


@pytest.fixture
def as_user1(client_for, user1) -> APIClient:
    return client_for(user1)
