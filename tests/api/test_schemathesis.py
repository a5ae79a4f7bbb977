"""Property-based contract test of the whole REST API against its own OpenAPI schema.

Schemathesis generates requests from ``/api/schema/`` (valid and invalid input) and sends them
in-process through the WSGI application, authenticated as an administrator so every
operation is reachable. Every response must: not be a 5xx, have a status code the schema
documents, have a body that conforms to the documented schema, and the documented content
type. Bounded and deterministic: a fixed number of examples per operation, derandomized
(fixed seed, no example database, no shrinking), so the run is the same every time.
It runs in ``make test`` with the rest of the suite; alone: ``pytest tests/api/test_schemathesis.py``.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from rest_framework.authtoken.models import Token
from rest_framework.utils.encoders import JSONEncoder
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ris.roles import Role
from tests.factories import PatientFactory, ProcedureTypeFactory, StationFactory, UserFactory

EXAMPLES_PER_OPERATION = 12
# Explicit, so that no schemathesis.toml changes the run. The coverage phase (hundreds of
# boundary cases per operation) is left out to stay within the time budget; fuzzing runs valid
# and invalid input with a fixed seed.
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261204,
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        "generation": {
            "mode": "all",
            "max-examples": EXAMPLES_PER_OPERATION,
            "deterministic": True,
            "database": "none",
            "allow-x00": True,
        },
    }
)
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]


def _load_schema():
    """The schema as /api/schema/ serves it, built at collection (no database needed), bound
    to the WSGI application so that requests go through the whole middleware stack in-process.
    (Not ``schemathesis.pytest.from_fixture``: its lazy loader does not run on pytest 9.2.)"""
    from drf_spectacular.generators import SchemaGenerator

    from ris.wsgi import application

    spec = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(json.loads(json.dumps(spec, cls=JSONEncoder)), config=CONFIG)
    loaded.app = application
    return loaded


schema = _load_schema()


@pytest.fixture
def wsgi_in_test_transaction(db, settings):
    settings.ALLOWED_HOSTS = ["*"]
    # The WSGI handler closes the database connection after each request (as in production);
    # in a test that would close the test's transaction, so do what Django's test client does.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def admin_token(db):
    admin = UserFactory(username="st_admin", role=Role.ADMIN)
    # A little data, so that list and retrieve answers have bodies to check.
    PatientFactory()
    StationFactory(ae_title="CT1", modality="CT")
    ProcedureTypeFactory(code_value="CTHEAD", modality="CT")
    return Token.objects.create(user=admin).key


@schema.parametrize()
# One test per operation; ~500 requests in all: about 50 s on a quiet 2-core machine.
@pytest.mark.timeout(120)
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case, wsgi_in_test_transaction, admin_token):
    case.call_and_validate(headers={"Authorization": f"Token {admin_token}"}, checks=CHECKS)
