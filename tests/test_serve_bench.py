"""`pixwizard bench serve`: a bounded loopback load test, on the tiny debug model."""

import pytest
from serve_support import debug_pipeline, keyword_route, one_torch_thread  # noqa: F401 (fixture)

from pixwizard.cli import main
from pixwizard.serve.bench import bench_serve, check_loopback


def test_every_request_answered_and_health_answers_while_busy():
    report = bench_serve(pipe=debug_pipeline(), route_fn=keyword_route, clients=3, requests=12, size=16, steps=2,
                         health_interval=0.01)
    assert (report["ok"], report["failed"], report["lost"]) == (12, 0, 0)
    assert report["statuses"] == {"200": 12} and report["server"]["completed"] == 12
    lat = report["latency_s"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["max"] and report["throughput_rps"] > 0
    assert report["healthz_while_busy_ms"]["failed"] == 0


def test_only_loopback_is_load_tested(capsys):
    assert check_loopback("http://127.0.0.1:7860/") == "http://127.0.0.1:7860"
    with pytest.raises(ValueError, match="loopback"):
        check_loopback("http://192.0.2.1:7860")
    assert main(["bench", "serve", "--url", "http://example.org:80"]) == 2
    assert "only sends loopback traffic" in capsys.readouterr().err
