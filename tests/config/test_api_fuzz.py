"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis).

Every operation gets a bounded number of generated requests, as an authenticated client of
client1 would send them; every answer must be no 5xx, and must match what the document says
(status, content type, body schema, headers).
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application

EXAMPLES_PER_OPERATION = 25
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture
def bearer(bearer_client, user1, cluster1):
    """client1's access token, for requests sent straight to the WSGI application.

    Not through Django's test client, so do what it does: keep the test's transaction open
    instead of closing the connection at the start and end of each request (which would look
    like a database outage). After the sign-in: the test client reconnects them when it is done.
    """
    token = bearer_client(user1).tokens["accessToken"]
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield token
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
@pytest.mark.django_db
def test_no_generated_request_breaks_the_api_or_its_document(case, bearer):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {bearer}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
