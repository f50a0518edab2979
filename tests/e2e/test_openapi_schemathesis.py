"""Property-based run of the live server's own /openapi.json (schemathesis 4.x).

Every documented operation is exercised with generated valid (positive) and invalid
(negative) inputs. The run is bounded (MAX_EXAMPLES per operation and mode) and uses its
own server, because random inputs create a lot of data. It runs once per backend, like every
HTTP suite, and each backend draws its own examples: the answers' shapes do not depend on the
backend, so the two halves together give each operation and mode ~25 examples per session, at
half the cost of 25 on each (this test was a quarter of the whole suite's time).

Why not ``@schema.parametrize()``: the schema only exists once a server is running, and
``schemathesis.pytest.from_fixture`` (the lazy loader for that case) fails on pytest 9.2
(``'Function' object has no attribute '_nodeid'``). So the test drives each operation's
Hypothesis strategy (``APIOperation.as_strategy``) itself and uses schemathesis'
``case.call()`` + ``case.validate_response()``.

Checks: schemathesis' default checks (no 5xx, status codes, content types and bodies
conform to the schema, invalid data is rejected, auth is not ignored, ...), with one
adjustment: ``positive_data_acceptance`` also allows 400, because schema-valid requests
routinely name resources that do not exist (``Invalid conversation_id``, ``Invalid
replica_id``) and the Tavus contract answers those with 400, not 404; and
``negative_data_rejection`` also allows 413, the body-size limit's answer to an invalid body
generated past 1 MiB. A request whose line carries raw non-ASCII bytes (a generated query
string) is not HTTP and is refused by uvicorn's parser before it reaches Palaver, with its
own text/plain 400; such a response is accepted only when the request really had them.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

MAX_EXAMPLES = 12  # per backend; see the module docstring


@pytest.fixture(scope="module")
def fuzz_server(server_factory):
    srv = server_factory(name="schemathesis")
    assert srv.shown_once_key
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def live_schema(fuzz_server):
    config = schemathesis.Config.from_dict(
        {
            "headers": {"x-api-key": fuzz_server.shown_once_key},
            "checks": {
                "positive_data_acceptance": {
                    # 410: the deprecated replacements/lipsync operations answer nothing else.
                    "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "410", "429"],
                },
                # 413 is a rejection too: an invalid body generated past 1 MiB (an over-long
                # string field) meets the body-size limit before it reaches validation.
                "negative_data_rejection": {
                    "expected-statuses": ["400", "401", "403", "404", "405", "406", "409", "410", "413", "415", "422",
                                          "428"],
                },
            },
        }
    )
    return schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json", config=config)


PARSER_REFUSAL = b"Invalid HTTP request received."


def _query_is_ascii(case) -> bool:
    return all(str(k).isascii() and str(v).isascii() for k, v in (case.query or {}).items())


def _operations(schema) -> list:
    ops = []
    for result in schema.get_all_operations():
        ops.append(result.ok())  # raises if the schema has an invalid operation
    return ops


_FREE_FORM_STRING_KEYS = {"type", "title", "description"}


def _nothing_to_make_invalid(operation) -> bool:
    """No body, and every parameter a path or header string without constraints: negative
    generation can only end in Unsatisfiable, after ~1-2 s of Hypothesis trying per operation
    (measured: 61 operations, a minute per backend), so the negative run does not ask."""
    if len(operation.body):
        return False
    for parameter in operation.iter_parameters():
        schema = parameter.definition.get("schema", {})
        if parameter.location.value not in ("path", "header") or schema.get("type") != "string":
            return False
        if set(schema) - _FREE_FORM_STRING_KEYS:
            return False
    return True


def _run(operation, mode: GenerationMode, base_url: str, headers: dict) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    def run(case):
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.content[:500]!r}"
        )
        assert b"Traceback" not in response.content
        if response.status_code == 400 and response.content == PARSER_REFUSAL:
            # Raw non-ASCII bytes in the request line: not HTTP (RFC 9112 3.2), refused by the
            # server's parser before Palaver sees it, in the server's own text/plain.
            assert not case.formatted_path.isascii() or not _query_is_ascii(case), case
            return
        case.validate_response(response, headers=headers)

    run()


def test_schema_has_the_conversation_operations(live_schema):
    labels = {op.label for op in _operations(live_schema)}
    for expected in ["POST /v2/conversations", "GET /v2/conversations",
                     "GET /v2/conversations/{conversation_id}", "DELETE /v2/conversations/{conversation_id}",
                     "POST /v2/conversations/{conversation_id}/end"]:
        assert expected in labels, labels


def test_schema_describes_every_resource(live_schema):
    labels = {op.label for op in _operations(live_schema)}
    for expected in ["POST /v2/personas", "PATCH /v2/pals/{pal_id}", "GET /v2/faces", "POST /v2/replicas",
                     "PATCH /v2/replicas/{replica_id}/name", "POST /v2/tools", "POST /v2/pals/{pal_id}/tools",
                     "PUT /v2/pals/{pal_id}/skills/{skill_id}", "GET /v2/skills", "POST /v2/objectives/validate",
                     "GET /v2/guardrails/tags", "POST /v2/pronunciation-dictionaries", "GET /v2/voices",
                     "DELETE /v2/memories/{memory_store}/{memory_id}", "GET /v2/memory-stores",
                     "POST /v2/documents/{document_id}/recrawl", "GET /v2/documents/{document_id}/chunks",
                     "POST /v2/replacements", "GET /v2/lipsync/{lipsync_id}", "PATCH /v2/deployments/{deployment_id}",
                     "POST /deployments/{deployment_id}/conversations"]:  # fmt: skip
        assert expected in labels, sorted(labels)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_openapi_conformance(live_schema, fuzz_server, mode):
    headers = {"x-api-key": fuzz_server.shown_once_key}
    failures = []
    for operation in _operations(live_schema):
        if mode is GenerationMode.NEGATIVE and _nothing_to_make_invalid(operation):
            continue
        try:
            _run(operation, mode, fuzz_server.base_url, headers)
        except Unsatisfiable:
            # nothing in this operation can be made invalid (e.g. a free-form string path parameter)
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # collect per operation, report all
            failures.append(f"--- {operation.label} ({mode.value})\n{exc}")
    assert not failures, "\n".join(failures)
