"""Routing of everyday requests (issue 13 item 6) and the router shipped in the package (item 4)."""

import json
from pathlib import Path

import pytest
import torch

from pixwizard.tasks import routing, ship_router
from pixwizard.tasks.instructions import phrasings
from pixwizard.tasks.registry import REGISTRY
from pixwizard.tasks.routing import FAMILIES, SHIPPED_ROUTER, TaskRouter

torch.set_num_threads(1)

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "everyday_requests.json").read_text())
REQUESTS = [(r["text"], r["ok"]) for r in FIXTURE["requests"]]
BAR = 0.95  # measured 0.958 (115/120) with the shipped router


@pytest.fixture(scope="module", autouse=True)
def builtin_tasks_only():
    """The shipped router covers the built-in tasks; tasks other tests registered (pixwizard
    finetune) are set aside here and put back after."""
    from pixwizard.tasks.registry import CUSTOM_PHRASINGS

    extra = {t: REGISTRY.pop(t) for t in list(REGISTRY) if t in CUSTOM_PHRASINGS}
    yield
    REGISTRY.update(extra)


def test_fixture_is_held_out_and_well_formed():
    texts = [t for t, _ in REQUESTS]
    assert len(texts) >= 100 and len(set(t.lower() for t in texts)) == len(texts)
    assert all(ok and set(ok) <= set(REGISTRY) for _, ok in REQUESTS)
    bank = {p.lower() for task in REGISTRY for p in phrasings(task, "all")}
    bank |= {p.lower() for items in routing.router_phrasings().values() for p in items}
    assert not bank & {t.lower() for t in texts}, "the everyday set must not repeat router training texts"
    assert len(FIXTURE["off_topic"]) >= 5


def test_shipped_router_is_current_and_small():
    """The shipped fit was made from this very bank, router phrasings, settings and MiniLM
    (refit with `python -m pixwizard.tasks.ship_router` after changing any of them)."""
    assert SHIPPED_ROUTER.is_file() and SHIPPED_ROUTER.stat().st_size < 1_000_000
    assert ship_router.shipped_key() == ship_router.current_key()
    assert ship_router.main(["--check"]) == 0


@pytest.fixture(scope="module")
def shipped():
    def no_fit(*args, **kwargs):
        raise AssertionError("the shipped router must load without fitting")

    saved, TaskRouter._fit = TaskRouter._fit, no_fit
    try:
        return routing.shipped_router(routing.default_embed_fn())
    finally:
        TaskRouter._fit = saved


def test_everyday_requests_route_to_an_acceptable_task(shipped):
    routes = shipped.route_batch([t for t, _ in REQUESTS])
    wrong = [(t, r.task) for (t, ok), r in zip(REQUESTS, routes) if r.task not in ok]
    accuracy = 1 - len(wrong) / len(REQUESTS)
    print(f"everyday routing accuracy {accuracy:.3f} ({len(REQUESTS) - len(wrong)}/{len(REQUESTS)}); wrong: {wrong}")
    assert accuracy >= BAR
    by_text = dict(zip((t for t, _ in REQUESTS), routes))
    for text in ("make the photo less blurry", "sharpen this photo", "remove the blur"):
        assert by_text[text].task in FAMILIES["deblur"], text
    assert sum(r.no_match for r in routes) <= 2  # real requests are not turned away


def test_off_topic_requests_get_the_closest_tasks_not_a_silent_guess(shipped):
    for text, r in zip(FIXTURE["off_topic"], shipped.route_batch(FIXTURE["off_topic"])):
        assert r.low_confidence, text
        msg = r.message()
        assert r.alternatives[0][0] in msg and ("no task matches" in msg or "low confidence" in msg), msg
    r = shipped.route("tell me a joke")
    assert r.no_match and r.similarity < routing.NO_MATCH_SIMILARITY
    assert r.message().startswith("no task matches this instruction well")


def hashed(texts, dim=64):
    out = torch.zeros(len(texts), dim)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, hash(word) % dim] += 1.0
    return out


def test_a_family_does_not_split_its_vote(monkeypatch):
    router = TaskRouter.__new__(TaskRouter)  # no fit: routing only reads the task list and the scores
    router.tasks = tuple(REGISTRY)
    probs = torch.zeros(1, len(router.tasks))
    col = {t: i for i, t in enumerate(router.tasks)}
    probs[0, col["denoise"]] = 0.31
    for t, p in zip(FAMILIES["deblur"], (0.15, 0.24, 0.2)):
        probs[0, col[t]] = p
    probs[0, col["canny"]] = 0.1
    monkeypatch.setattr(router, "_scores", lambda texts: (probs, None))
    r = router.route("make the photo less blurry")
    assert r.task == "deblur_defocus" and r.confidence == pytest.approx(0.59)
    assert [t for t, _ in r.alternatives] == ["denoise", "deblur_gaussian", "deblur_motion"]
    assert not r.low_confidence and r.similarity is None and not r.no_match


def test_prototypes_survive_the_cache(tmp_path):
    from pixwizard.tasks.routing import _embed

    emb_fn = lambda t: hashed(t)  # noqa: E731
    first = TaskRouter(emb_fn, cache_dir=tmp_path, max_iter=3)  # a rough fit: only the cache is tested
    assert first.prototypes is not None and first.prototypes.shape == (routing.PROTOTYPES_PER_TASK * len(REGISTRY), 64)
    again = TaskRouter(emb_fn, cache_dir=tmp_path, max_iter=3)
    assert torch.equal(first.prototypes, again.prototypes)
    r = again.route("remove the rain")
    emb = _embed(emb_fn, ["remove the rain"])
    assert r.similarity == pytest.approx(float((emb @ first.prototypes.T).max()))
