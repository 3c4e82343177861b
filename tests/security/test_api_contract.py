"""The OpenAPI description and the API agree (issue 12, item 12): the three places the probe
found, each both ways, and a stateful schemathesis run that follows the description's links."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app.web import openapi
from tests.web.test_api import SCHEMA, World, call, world  # noqa: F401 - the fixture
from tests.web.test_api_schema import CHECKS
from tests.web.test_api_schema import env as env  # noqa: F401 - limits out of the way

PLACE_INPUT = openapi.COMPONENTS["schemas"]["PlaceInput"]


def test_the_cursor_is_described_as_opaque_and_answers_so(client, world: World):  # noqa: F811
    parameter = next(p for p in SCHEMA.raw_schema["paths"]["/members"]["get"]["parameters"] if p["name"] == "cursor")
    assert "opaque" in parameter["description"].lower() and "400" in parameter["description"]
    for cursor in ("0", "a+b", "x" * 513):
        response = call(client, "GET", f"/members?cursor={cursor}", world.tokens["official"])
        assert response.status_code == 400 and response.json["error"] == "bad_cursor", cursor
    first = call(client, "GET", "/members?limit=1", world.tokens["official"]).json
    assert (
        call(client, "GET", f"/members?limit=1&cursor={first['next_cursor']}", world.tokens["official"]).status_code
        == 200
    )


@pytest.mark.parametrize(
    "body",
    [
        {"district_code": "PD", "workplace_code": "", "workplace_name": "x"},
        {"district_code": "PD", "workplace_code": "PD-9", "workplace_name": " "},
        {"district_code": "PD", "district_name": ""},
        {"district_code": "PD", "kind": "hub"},
    ],
)
def test_place_input_the_schema_refuses_is_refused(client, world: World, body):  # noqa: F811
    assert call(client, "POST", "/places", world.tokens["admin"], json=body).status_code == 422


def test_a_new_district_needs_its_name_and_the_schema_says_so(client, world: World):  # noqa: F811
    assert "district_name is required when the district does not exist" in PLACE_INPUT["description"]
    response = call(client, "POST", "/places", world.tokens["admin"], json={"district_code": "NEW"})
    assert response.status_code == 422 and "district_name" in response.json["message"]


LINKS = {
    ("/members", "get"): {
        "GetFirstMember": {"operationId": "getMember", "parameters": {"member_id": "$response.body#/items/0/id"}},
    },
}


def test_the_description_links_a_page_to_its_members():
    responses = openapi.document()["paths"]["/members"]["get"]["responses"]["200"]
    assert responses["links"]["GetFirstMember"]["operationId"] == "getMember"


def test_stateful_run_follows_the_links_without_a_5xx_or_a_mismatch(app, world: World):  # noqa: F811
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema.config.headers = {"Authorization": f"Bearer {world.tokens['admin']}"}
    machine = schema.as_state_machine()

    class Run(machine):  # type: ignore[misc, valid-type]
        def validate_response(self, response, case, **kwargs):  # type: ignore[no-untyped-def]
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}"
            case.validate_response(response, checks=CHECKS, headers=schema.config.headers)

    Run.TestCase.settings = settings(
        max_examples=15, stateful_step_count=4, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    Run.TestCase().runTest()
