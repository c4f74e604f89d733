"""Shard writer/reader: atomic files, byte-reproducible tars, round trip, shuffle and resume."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from pixwizard.data.shards import (DataPosition, atomic_write_json, decode_sample, encode_sample, item_key,
                                   iter_dataset, list_shards, read_shard_raw, remove_stray_temps, shard_name,
                                   sidecar_path, write_shard)


def _sample(i: int, size: int = 16):
    rng = np.random.default_rng(i)
    inp = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    tgt = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    truth = {"mask": rng.random((size, size)) > 0.5, "depth": rng.random((size, size)).astype(np.float32),
             "boxes": np.array([[1, 2, 5, 9]], np.float32)}
    record = {"task": "t", "instruction": f"item {i}", "index": i, "meta": {"sigma": np.float32(0.5)}}
    return inp, tgt, record, truth


def _write_dataset(folder, n_shards=3, per_shard=4):
    folder.mkdir(exist_ok=True)
    for s in range(n_shards):
        samples = []
        for j in range(per_shard):
            i = s * per_shard + j
            samples.append(encode_sample(item_key(i), *_sample(i)))
        path = folder / shard_name(s)
        info = write_shard(path, samples)
        atomic_write_json(sidecar_path(path), {"items": info.items})
    return n_shards * per_shard


def test_round_trip_exact(tmp_path):
    inp, tgt, record, truth = _sample(7)
    path = tmp_path / shard_name(0)
    info = write_shard(path, [encode_sample("000000007", inp, tgt, record, truth)])
    assert info.items == 1 and info.bytes == path.stat().st_size
    raw = read_shard_raw(path)
    assert len(raw) == 1
    out = decode_sample(raw[0])
    assert out["key"] == "000000007"
    np.testing.assert_array_equal(out["input"], inp)
    np.testing.assert_array_equal(out["target"], tgt)
    assert out["instruction"] == "item 7" and out["meta"]["sigma"] == 0.5
    assert set(out["truth"]) == {"mask", "depth", "boxes"}
    for k, v in truth.items():
        assert out["truth"][k].dtype == v.dtype
        np.testing.assert_array_equal(out["truth"][k], v)


def test_tar_bytes_reproducible(tmp_path):
    samples = [encode_sample(item_key(i), *_sample(i)) for i in range(3)]
    a = write_shard(tmp_path / "a.tar", samples)
    b = write_shard(tmp_path / "b.tar", samples)
    assert a.sha256 == b.sha256
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_failed_write_leaves_nothing(tmp_path):
    def broken():
        yield encode_sample(item_key(0), *_sample(0))
        raise RuntimeError("generator died")

    with pytest.raises(RuntimeError):
        write_shard(tmp_path / shard_name(0), broken())
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_rejected():
    inp, tgt, record, truth = _sample(0)
    with pytest.raises(ValueError, match="must not contain"):
        encode_sample("a.b", inp, tgt, record, truth)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        encode_sample("k", inp.astype(np.float32), tgt, record, truth)
    with pytest.raises(TypeError, match="not JSON"):
        encode_sample("k", inp, tgt, {"bad": object()}, {})


def test_stray_temps_removed_and_unlisted(tmp_path):
    _write_dataset(tmp_path, n_shards=1)
    stray = tmp_path / (shard_name(1) + ".tmp-4242")
    stray.write_bytes(b"partial")
    no_sidecar = tmp_path / shard_name(2)
    no_sidecar.write_bytes(b"")  # a tar without sidecar is not complete
    assert list_shards(tmp_path) == [tmp_path / shard_name(0)]
    assert remove_stray_temps(tmp_path) == [stray]
    assert not stray.exists()


def test_reader_order_shuffle_and_parts(tmp_path):
    n = _write_dataset(tmp_path)
    plain = [s["index"] for s in iter_dataset(tmp_path)]
    assert plain == list(range(n))
    a = [s["index"] for s in iter_dataset(tmp_path, shuffle_seed=3)]
    b = [s["index"] for s in iter_dataset(tmp_path, shuffle_seed=3)]
    c = [s["index"] for s in iter_dataset(tmp_path, shuffle_seed=4)]
    assert a == b and sorted(a) == plain and a != plain and a != c
    parts = [[s["index"] for s in iter_dataset(tmp_path, part=(r, 2))] for r in range(2)]
    assert sorted(parts[0] + parts[1]) == plain and not set(parts[0]) & set(parts[1])
    with pytest.raises(ValueError, match="rank"):
        next(iter_dataset(tmp_path, part=(2, 2)))


@pytest.mark.parametrize("stop", [1, 4, 5, 11])
def test_reader_resume_position(tmp_path, stop):
    _write_dataset(tmp_path)
    full = list(iter_dataset(tmp_path, shuffle_seed=9))
    it = iter_dataset(tmp_path, shuffle_seed=9)
    head = [next(it) for _ in range(stop)]
    pos = DataPosition.from_dict(json.loads(json.dumps(head[-1]["position"].to_dict())))
    tail = list(iter_dataset(tmp_path, shuffle_seed=9, start=pos))
    assert [s["key"] for s in head + tail] == [s["key"] for s in full]
    np.testing.assert_array_equal(tail[0]["input"], full[stop]["input"])


def test_missing_dataset_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_shards(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no complete shards"):
        list_shards(tmp_path)


def test_atomic_json_replaces_whole_file(tmp_path):
    p = tmp_path / "m.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert os.listdir(tmp_path) == ["m.json"]


def test_layout_matches_webdataset_tarwriter(tmp_path):
    import webdataset as wds

    samples = [encode_sample(item_key(i), *_sample(i)) for i in range(2)]
    ours = write_shard(tmp_path / "ours.tar", samples)
    with open(tmp_path / "wds.tar", "wb") as f:
        writer = wds.TarWriter(f, encoder=False, mtime=0, user="pixwizard", group="pixwizard", mode=0o444)
        for s in samples:
            writer.write(dict(s))
        writer.close()
    assert (tmp_path / "wds.tar").read_bytes() == ours.path.read_bytes()
