"""Property tests of the REST API: no 5xx for any request, from its OpenAPI schema (schemathesis)
and for generated options on a real image (hypothesis)."""

import json

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)
from serve_support import debug_pipeline, keyword_route, one_torch_thread, png_bytes  # noqa: F401 (fixture)

from pixwizard.serve.api import create_app
from pixwizard.serve.config import ServeConfig
from pixwizard.serve.engine import Engine

CONFIG = ServeConfig(max_steps=3, max_size=64, max_upload_bytes=64 * 1024, timeout_s=30)
PROPERTY = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def app():
    with Engine(debug_pipeline(), route_fn=keyword_route) as engine:
        yield create_app(engine, CONFIG, ui=False)


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


@pytest.mark.parametrize("path", ["/v1/run", "/v1/tasks", "/healthz", "/v1/results/{job_id}/{filename}"])
def test_no_server_error_for_any_request_from_the_schema(app, path):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert path in {op.path for op in operations}
    for op in (op for op in operations if op.path == path):

        @given(case=op.as_strategy())
        @PROPERTY
        def check(case):
            case.call_and_validate(checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                           response_schema_conformance])

        check()


# Options as a client might send them: half in range (these reach the model), half anything
# (out-of-range values, wrong types, unknown tasks, odd text, extra keys); the image is a real PNG.
VALID = {
    "task": st.sampled_from(["depth", "refbox", "normals", "semseg", "refseg_overlay", "canny", "denoise"]),
    "steps": st.integers(1, 3),
    "text_guidance": st.floats(0, 50),
    "image_guidance": st.floats(0, 50),
    "seed": st.integers(0, 2**63 - 1),
    "size": st.integers(8, 64),
}
ANY = {
    "instruction": st.text(max_size=40),
    "task": st.one_of(st.none(), st.text(max_size=8)),
    "steps": st.one_of(st.none(), st.integers(-2, 5), st.floats(allow_nan=True), st.text(max_size=3)),
    "text_guidance": st.one_of(st.none(), st.floats(-1, 60, allow_nan=False), st.booleans()),
    "image_guidance": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=True)),
    "seed": st.one_of(st.integers(-5, 2**64), st.none()),
    "size": st.one_of(st.none(), st.integers(-1, 80)),
    "extra": st.integers(),
}
INSTRUCTIONS = st.sampled_from(["make a mask of the cube", "estimate the depth", "draw a red box around it",
                                "tint the sphere pink", "remove the noise \u00e9\u6f22"])
OPTIONS = st.one_of(st.fixed_dictionaries({"instruction": INSTRUCTIONS}, optional=VALID),
                    st.fixed_dictionaries({}, optional=ANY))


@given(options=OPTIONS, side=st.integers(1, 40))
@settings(PROPERTY, max_examples=40)
def test_no_server_error_for_generated_options_on_a_real_image(client, options, side):
    r = client.post("/v1/run", files={"image": ("in.png", png_bytes(side, 41 - side), "image/png")},
                    data={"options": json.dumps(options)})
    assert r.status_code in (200, 413, 422), (r.status_code, r.text)
    if r.status_code == 200:
        body = r.json()
        assert (body["height"], body["width"]) == (side, 41 - side)
    else:
        assert isinstance(r.json()["detail"], str) and "\n" not in r.json()["detail"]
