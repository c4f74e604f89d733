"""Instruction routing: API behaviour with a tiny embedding, accuracy with the real text encoder."""

import json
import time
import zlib

import pytest
import torch

from pixwizard import cli
from pixwizard.tasks import routing
from pixwizard.tasks.instructions import phrasings
from pixwizard.tasks.registry import REGISTRY
from pixwizard.tasks.routing import Route, TaskRouter, evaluate_router, heldout_instructions

torch.set_num_threads(1)

ACCURACY_BAR = 0.95  # measured 0.9725 (389/400) with the packaged MiniLM
HELDOUT_COUNT = sum(len(phrasings(t, "heldout")) for t in REGISTRY)


def hashed_bag_of_words(texts: list[str], dim: int = 128) -> torch.Tensor:
    """A tiny deterministic embedding (hashed word counts) standing in for a sentence encoder."""
    out = torch.zeros(len(texts), dim)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, zlib.crc32(word.strip(".,?!:").encode()) % dim] += 1.0
    return out


@pytest.fixture(scope="module")
def tiny_router():
    return TaskRouter(hashed_bag_of_words)


def test_route_fields_and_ranking(tiny_router):
    r = tiny_router.route("Please remove the rain streaks from this photo.")
    assert isinstance(r, Route) and r.task == "derain"
    assert 0.5 < r.confidence <= 1.0 and not r.low_confidence
    assert len(r.alternatives) == 3 and all(t in REGISTRY and t != "derain" for t, _ in r.alternatives)
    scores = [r.confidence] + [p for _, p in r.alternatives]
    assert scores == sorted(scores, reverse=True)
    probs = tiny_router.probabilities(["Draw a red box around the blue sphere.", "estimate the depth map"])
    assert probs.shape == (2, len(REGISTRY)) and torch.allclose(probs.sum(1), torch.ones(2))
    assert [tiny_router.tasks[i] for i in probs.argmax(1)] == ["refbox", "depth"]


def test_low_confidence_is_flagged_with_closest_tasks(tiny_router):
    r = tiny_router.route("Please remove the rain streaks from this photo.", threshold=1.01)
    assert r.low_confidence
    msg = r.message()
    assert "low confidence" in msg and r.alternatives[0][0] in msg
    vague = tiny_router.route("xyzzy plugh")
    assert vague.low_confidence and vague.confidence < 0.5


def test_bad_inputs_fail_clearly(tiny_router):
    with pytest.raises(ValueError, match="non-empty"):
        tiny_router.route("   ")
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        TaskRouter(lambda texts: torch.zeros(3))


def test_heldout_set_covers_every_task():
    labelled = heldout_instructions()
    assert {t for _, t in labelled} == set(REGISTRY)
    assert all("{" not in text for text, _ in labelled)
    assert len(labelled) == HELDOUT_COUNT == 400


@pytest.fixture(scope="module")
def real_router():
    t0 = time.perf_counter()
    router = TaskRouter()  # default: the packaged MiniLM through pixwizard.model.encoders.text
    print(f"router fit {time.perf_counter() - t0:.1f}s on {len(router.bank_texts)} phrasings")
    return router


@pytest.mark.slow
def test_heldout_routing_accuracy(real_router):
    report = evaluate_router(real_router)
    print(f"held-out routing accuracy {report.accuracy:.4f} on {report.count}; errors: {report.errors}")
    assert report.count == HELDOUT_COUNT
    assert report.accuracy >= ACCURACY_BAR
    assert min(report.per_task.values()) >= 0.6
    # wrong routes are less confident than right ones on average
    routes = real_router.route_batch([t for t, _ in heldout_instructions()])
    wrong = {text for text, _, _ in report.errors}
    right_conf = [r.confidence for (text, _), r in zip(heldout_instructions(), routes) if text not in wrong]
    wrong_conf = [r.confidence for (text, _), r in zip(heldout_instructions(), routes) if text in wrong]
    assert sum(wrong_conf) / len(wrong_conf) < sum(right_conf) / len(right_conf)


@pytest.mark.slow
def test_cli_tasks_list_and_route(real_router, monkeypatch, capsys):
    assert cli.main(["tasks"]) == 0
    out = capsys.readouterr().out
    for task in REGISTRY:
        assert task in out
    assert "box_acc50" in out and "grounding" in out
    monkeypatch.setattr(routing, "default_router", lambda: real_router)
    assert cli.main(["tasks", "route", "could you take the snowflakes out of my holiday picture?"]) == 0
    assert capsys.readouterr().out.split("\t")[0] == "desnow"
    assert cli.main(["tasks", "route", "--json", "qwerty", "--threshold", "0.99"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["low_confidence"] is True and "closest tasks" in captured.err
    assert cli.main(["tasks", "route", "   "]) == 2


def test_fitted_router_is_deterministic_and_cached_on_disk(tiny_router, tmp_path, monkeypatch):
    first = TaskRouter(hashed_bag_of_words, cache_dir=tmp_path)
    text = ["turn the photo into a watercolour"]
    assert torch.equal(first.probabilities(text), tiny_router.probabilities(text))  # same fit, bit for bit
    files = list(tmp_path.glob("router-*.safetensors"))
    assert len(files) == 1

    def no_fit(*args, **kwargs):
        raise AssertionError("the cached router must not be refitted")

    monkeypatch.setattr(TaskRouter, "_fit", no_fit)
    again = TaskRouter(hashed_bag_of_words, cache_dir=tmp_path)
    assert torch.equal(first.probabilities(text), again.probabilities(text))
    # another embedding (or bank, or setting) gets another cache entry, never a stale one
    with pytest.raises(AssertionError, match="refitted"):
        TaskRouter(lambda t: hashed_bag_of_words(t, dim=64), cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="refitted"):
        TaskRouter(hashed_bag_of_words, cache_dir=tmp_path, weight_decay=1e-3)


def test_a_truncated_router_cache_is_refitted_and_rewritten(tmp_path):
    """A damaged cache file must not break every later run until deleted by hand (issue 10, item 12)."""
    first = TaskRouter(hashed_bag_of_words, cache_dir=tmp_path, max_iter=5)
    (cache,) = tmp_path.glob("router-*.safetensors")
    good = cache.read_bytes()
    cache.write_bytes(good[: len(good) // 2])
    with pytest.warns(routing.RouterCacheWarning, match="unreadable"):
        again = TaskRouter(hashed_bag_of_words, cache_dir=tmp_path, max_iter=5)
    text = ["remove the rain"]
    assert torch.equal(first.probabilities(text), again.probabilities(text))
    assert cache.read_bytes() == good  # rewritten whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [cache.name]  # no temporary file left


def test_an_unwritable_router_cache_only_costs_the_refit(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way of the cache folder")
    with pytest.warns(routing.RouterCacheWarning, match="cannot be written"):
        router = TaskRouter(hashed_bag_of_words, cache_dir=blocker / "pixwizard", max_iter=5)
    assert router.route("remove the rain").task in REGISTRY
    assert "cannot be written" in router.cache_note
