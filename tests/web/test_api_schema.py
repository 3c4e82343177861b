"""A fuzz pass over /api/v1 with schemathesis: valid and invalid input, never a 5xx, every answer as documented."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks

from app.models import utcnow
from app.services import api_tokens
from tests.web.test_api import World, world  # noqa: F401  (the fixture)

EXAMPLES = 25
# Which checks hold for this API. `positive_data_acceptance` is left out: a schema-valid request may
# still name a district or cursor that does not exist (404 / 400 / 422 by design).
CHECKS = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
    checks.ignored_auth,
]


@pytest.fixture
def env(env):  # type: ignore[no-untyped-def]
    """Limits out of the way: hundreds of generated calls a minute, many refused (test_api_limits tests them)."""
    return {**env, "API_RATE_LIMIT": "100000 per minute", "API_AUTH_FAILURE_LIMIT": "100000 per minute"}


def operations(app):  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(operation, token: str, mode: GenerationMode) -> None:  # type: ignore[no-untyped-def]
    strategy = operation.as_strategy(generation_mode=mode, headers={"Authorization": f"Bearer {token}"})

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    def run(case) -> None:  # type: ignore[no-untyped-def]
        response = case.call()
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}"
        case.validate_response(response, checks=CHECKS, headers={"Authorization": f"Bearer {token}"})

    run()


@pytest.mark.parametrize("role", ["official", "admin", "organizer"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzz_every_operation(app, world: World, role: str, mode: GenerationMode):  # noqa: F811
    found = operations(app)
    assert len(found) == 13  # 8, and the 5 transfer operations (app/web/openapi_transfers.py)
    for operation in found:
        fuzz(operation, world.tokens[role], mode)


def test_fuzz_without_a_valid_token_is_always_401(app, db, world: World):  # noqa: F811
    api_tokens.revoke(db, world.users["admin"], now=utcnow())
    db.commit()
    for operation in operations(app):
        strategy = operation.as_strategy(headers={"Authorization": f"Bearer {world.tokens['admin']}"})

        @given(case=strategy)
        @settings(
            max_examples=10, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
        )
        def run(case) -> None:  # type: ignore[no-untyped-def]
            assert case.call().status_code == 401

        run()
