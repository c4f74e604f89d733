"""The REST API of `pixwizard serve` on a tiny debug model, through FastAPI's test client."""

import base64
import io
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from serve_support import debug_pipeline, keyword_route, one_torch_thread, png_bytes  # noqa: F401 (fixture)

from pixwizard.cli import build_parser
from pixwizard.serve.api import create_app, options_json
from pixwizard.serve.config import ServeConfig
from pixwizard.serve.engine import Busy, Cancelled, Engine, JobOptions


@pytest.fixture(scope="module")
def pipe():
    return debug_pipeline()


@pytest.fixture(scope="module")
def client(pipe):
    with Engine(pipe, route_fn=keyword_route) as engine:
        yield TestClient(create_app(engine, ServeConfig(max_steps=8), ui=False))


def post(client, image=None, **options):
    image = png_bytes() if image is None else image
    return client.post("/v1/run", files={"image": ("in.png", image, "image/png")},
                       data={"options": options_json(**options)})


def decode_png(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_run_returns_the_pipelines_image_and_its_mask(client, pipe):
    r = post(client, instruction="make a mask of the red cube", steps=2, seed=3)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task"] == "refseg_mask" and body["route"]["task"] == "refseg_mask"
    assert (body["width"], body["height"], body["steps"], body["seed"]) == (32, 24, 2, 3)
    image = decode_png(body["image"]["data_base64"])
    ref = pipe(np.asarray(Image.open(io.BytesIO(png_bytes()))), "make a mask of the red cube", steps=2, seed=3,
               task="refseg_mask")
    assert np.array_equal(image, ref.image)
    mask = decode_png(body["outputs"]["mask"]["data_base64"])
    assert mask.shape == (24, 32) and set(np.unique(mask)) <= {0, 255}
    assert np.array_equal(mask == 255, image.astype(np.float32).mean(axis=2) > 127)  # the mask codec's rule
    again = client.get(body["outputs"]["mask"]["url"])
    assert again.status_code == 200 and again.content == base64.b64decode(body["outputs"]["mask"]["data_base64"])


def test_a_given_task_overrides_routing_and_gives_its_typed_outputs(client):
    body = post(client, instruction="make a mask of it", task="depth", steps=1).json()
    assert body["task"] == "depth" and body["route"] is None
    assert set(body["outputs"]) == {"depth", "depth16"}
    depth = np.load(io.BytesIO(base64.b64decode(body["outputs"]["depth"]["data_base64"])))
    assert depth.shape == (24, 32) and depth.dtype == np.float32 and np.all((depth >= 0.5) & (depth <= 20))


def test_shifted_passes_are_an_option_and_are_reported(client, pipe):
    source = np.asarray(Image.open(io.BytesIO(png_bytes())))
    body = post(client, instruction="remove the noise", task="denoise", steps=2, seed=5, shifts=2).json()
    assert body["shifts"] == 2
    two = pipe(source, "remove the noise", steps=2, seed=5, task="denoise", shifts=2).image
    one = pipe(source, "remove the noise", steps=2, seed=5, task="denoise", shifts=1).image
    assert np.array_equal(decode_png(body["image"]["data_base64"]), two) and not np.array_equal(two, one)
    assert post(client, instruction="remove the noise", steps=1).json()["shifts"] == pipe.config.flow.shifts


def test_tiles_are_an_option_and_are_reported(client, pipe):
    source = np.asarray(Image.open(io.BytesIO(png_bytes())))
    body = post(client, instruction="remove the noise", task="denoise", steps=1, seed=2, shifts=1, tile=16).json()
    tiled = pipe(source, "remove the noise", steps=1, seed=2, task="denoise", shifts=1, tile=16)
    assert body["tiles"] == tiled.tiles == 6 and body["working_size"] == [24, 32]
    assert np.array_equal(decode_png(body["image"]["data_base64"]), tiled.image)
    assert post(client, instruction="remove the noise", steps=1).json()["tiles"] == 1


def test_progress_runs_over_all_shifted_passes(pipe):
    image = np.zeros((16, 16, 3), np.uint8)
    with Engine(pipe, route_fn=keyword_route) as engine:
        job = engine.submit(image, JobOptions("denoise", steps=1000, task="denoise", shifts=2))
        seen, deadline = [], time.monotonic() + 30
        while job.passes_started < 2 and time.monotonic() < deadline:
            seen.append((job.passes_started, job.progress))
            time.sleep(0.002)
        job.cancel()
        with pytest.raises(Cancelled):
            job.future.result(10)
    first = [p for n, p in seen if n == 1]
    assert first and max(first) <= 0.5 and max(first) > 0  # the first of two passes fills half the bar
    with pytest.raises(ValueError, match="shifts"):
        engine.submit(image, JobOptions("denoise", shifts=3))


def test_low_confidence_routing_is_said(client):
    body = post(client, instruction="do something nice", steps=1).json()
    assert body["route"]["low_confidence"] and any("low confidence" in n for n in body["notes"])


def test_an_instruction_that_fits_no_task_gets_no_guess(client):
    body = post(client, instruction="xyzzy the plugh", steps=1).json()
    assert body["task"] is None and body["outputs"] == {} and body["route"]["no_match"]
    assert "no task matches" in body["notes"][0] and body["width"] == 32


def test_tasks_health_and_openapi(client):
    tasks = client.get("/v1/tasks").json()["tasks"]
    by_id = {t["id"]: t for t in tasks}
    assert by_id["refbox"]["outputs"] == ["boxes"] and by_id["depth"]["outputs"] == ["depth", "depth16"]
    assert all(t["examples"] for t in tasks)
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["queue"]["capacity"] == 16
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/run", "/v1/tasks", "/healthz"} <= set(paths)
    assert {"413", "422", "429", "503"} <= set(paths["/v1/run"]["post"]["responses"])


@pytest.mark.parametrize("image,options,code,words", [
    (b"not an image at all", {"instruction": "denoise"}, 422, "not an image"),
    (b"", {"instruction": "denoise"}, 422, "empty"),
    (None, {"instruction": "   "}, 422, "instruction is empty"),
    (None, {"instruction": "denoise", "task": "depht"}, 422, "did you mean depth"),
    (None, {"instruction": "denoise", "steps": 9}, 422, "at most 8"),
    (None, {"instruction": "denoise", "steps": 0}, 422, "steps"),
    (None, {"instruction": "denoise", "colour": "red"}, 422, "colour"),
    (None, {"instruction": "denoise", "shifts": 3}, 422, "shifts"),
    (None, {"instruction": "denoise", "tile": 8}, 422, "tile"),
])
def test_bad_requests_get_a_one_line_4xx(client, image, options, code, words):
    r = client.post("/v1/run", files={"image": ("in.png", png_bytes() if image is None else image, "image/png")},
                    data={"options": options_json(**options)})
    assert r.status_code == code and words in r.json()["detail"] and "\n" not in r.json()["detail"]


def test_malformed_options_and_missing_parts_are_422(client):
    r = client.post("/v1/run", files={"image": ("in.png", png_bytes(), "image/png")}, data={"options": "{not json"})
    assert r.status_code == 422 and r.json()["detail"].startswith("options:")
    r = client.post("/v1/run", data={"options": options_json(instruction="denoise")})
    assert r.status_code == 422 and "image" in r.json()["detail"]
    r = client.post("/v1/run", content=b"garbage", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400 and "boundary" in r.json()["detail"]
    assert "400" in client.get("/openapi.json").json()["paths"]["/v1/run"]["post"]["responses"]


def test_upload_and_pixel_limits_are_413(pipe):
    config = ServeConfig(max_upload_bytes=3000, max_pixels=20 * 20)
    with Engine(pipe, route_fn=keyword_route) as engine:
        client = TestClient(create_app(engine, config, ui=False))
        r = post(client, image=png_bytes(40, 40), instruction="denoise")  # ~4.9 kB
        assert r.status_code == 413 and "3000 bytes" in r.json()["detail"]
        r = post(client, image=png_bytes(21, 21), instruction="denoise")  # 441 pixels, ~1.4 kB
        assert r.status_code == 413 and "over the limit of 400" in r.json()["detail"]
        assert post(client, image=png_bytes(20, 20), instruction="denoise", steps=1).status_code == 200


def test_full_queue_is_429_a_timeout_is_503_and_cancelled_work_never_runs(pipe):
    gate = threading.Event()

    def slow_route(text):
        gate.wait(10)
        return keyword_route(text)

    image = np.zeros((16, 16, 3), np.uint8)
    with Engine(pipe, route_fn=slow_route, queue_size=2) as engine:
        client = TestClient(create_app(engine, ServeConfig(queue_size=2, timeout_s=0.3), ui=False))
        first = engine.submit(image, JobOptions("denoise", steps=1))  # holds the worker at routing
        deadline = time.monotonic() + 20
        while not engine.busy and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.busy
        r = post(client, instruction="denoise", steps=1)
        assert r.status_code == 503 and "within 0.3 s" in r.json()["detail"]
        engine.submit(image, JobOptions("denoise", steps=1))
        engine.submit(image, JobOptions("denoise", steps=1))
        r = post(client, instruction="denoise", steps=1)
        assert r.status_code == 429 and "queue is full" in r.json()["detail"] and int(r.headers["Retry-After"]) >= 1
        with pytest.raises(Busy):
            engine.submit(image, JobOptions("denoise"))
        gate.set()
        first.future.result(10)
        deadline = time.monotonic() + 10
        while (engine.waiting or engine.busy) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.completed == 3 and engine.failed == 0  # the timed-out request was skipped


def test_a_running_job_is_cancelled_at_its_next_step(pipe):
    image = np.zeros((16, 16, 3), np.uint8)
    with Engine(pipe, route_fn=keyword_route) as engine:
        job = engine.submit(image, JobOptions("denoise", steps=2000, task="denoise"))
        deadline = time.monotonic() + 20
        while job.progress == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert 0 < job.progress < 1
        job.cancel()
        with pytest.raises(Cancelled):
            job.future.result(10)
        assert engine.completed == 0 and engine.failed == 0
        assert engine.run(image, JobOptions("denoise", steps=1), timeout=10).task == "denoise"


def test_a_stopped_engine_is_503(pipe):
    engine = Engine(pipe, route_fn=keyword_route)  # never started
    client = TestClient(create_app(engine, ServeConfig(), ui=False))
    assert client.get("/healthz").status_code == 503
    r = post(client, instruction="denoise")
    assert r.status_code == 503 and "not running" in r.json()["detail"]
    engine.close()


def test_serve_binds_loopback_unless_told():
    assert ServeConfig().host == "127.0.0.1" and ServeConfig().loopback
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1"
    assert not ServeConfig(host="0.0.0.0").loopback


def test_serve_refuses_bad_settings_in_one_line_before_loading(capsys, tmp_path):
    from pixwizard.cli import main

    assert main(["serve", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["serve", "--queue", "0"]) == 2
    assert "queue_size must be at least 1" in capsys.readouterr().err
