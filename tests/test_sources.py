"""Tests for the public-dataset adapters: each writes a tiny fixture in the dataset's native layout."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from pixwizard.data.sources import CorruptSourceError, SOURCES, SourceLayoutError, open_source
from pixwizard.data.sources.coco_masks import (counts_to_rle_string, mask_to_rle_counts, polygons_to_mask,
                                               rle_counts_to_mask, rle_string_to_counts, segmentation_to_mask)
from pixwizard.data.sources.editing import classify_edit
from pixwizard.data.sources.nyu import normals_from_depth
from pixwizard.tasks.colours import colour_names

def opened(name: str, root: Path, split: str | None = None, **options):
    return open_source(name, root, split, **options)


def rand_img(seed: int, h: int = 24, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def flat_img(value: int, h: int = 24, w: int = 32) -> np.ndarray:
    """A constant image: survives JPEG exactly enough for +-2 comparisons."""
    return np.full((h, w, 3), value, dtype=np.uint8)


def write(path: Path, array: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)
    return path


# ------------------------------------------------------------------------------------- COCO masks


def test_compressed_rle_hand_computed_and_round_trip():
    # counts [3, 2, 5, 4]: the 4th run is stored as 4 - 2 = 2 -> "3252"
    assert rle_string_to_counts("3252") == [3, 2, 5, 4]
    assert counts_to_rle_string([3, 2, 5, 4]) == "3252"
    # 100 = 0b11_00100 -> chunks 4 (+continuation 0x20) then 3 -> chr(36+48) chr(3+48)
    assert rle_string_to_counts("T3") == [100]
    # negative difference: 3 - 10 = -7 -> chr(25 + 48) = "I"
    assert rle_string_to_counts("1:1I") == [1, 10, 1, 3]
    rng = np.random.default_rng(0)
    for _ in range(50):
        mask = rng.random((7, 9)) < rng.random()
        counts = mask_to_rle_counts(mask)
        assert (rle_counts_to_mask(rle_string_to_counts(counts_to_rle_string(counts)), (7, 9)) == mask).all()


def test_rle_is_column_major_and_polygon_area_is_exact():
    mask = rle_counts_to_mask([1, 2, 3], (2, 3))  # column-major: (0,0)=0, (1,0)=1, (0,1)=1, rest 0
    assert mask.tolist() == [[False, True, False], [True, False, False]]
    poly = polygons_to_mask([[2, 2, 10, 2, 10, 8, 2, 8]], (12, 14))
    assert poly.sum() == 48 and poly[2:8, 2:10].all()
    with pytest.raises(ValueError, match="sum"):
        rle_counts_to_mask([1, 2], (2, 3))
    with pytest.raises(ValueError, match="RLE size"):
        segmentation_to_mask({"size": [3, 3], "counts": [9]}, (2, 3))


# ------------------------------------------------------------------------------------------- COCO


def _coco_fixture(root: Path) -> dict:
    h, w = 24, 32
    imgs = {1: rand_img(1, h, w), 2: rand_img(2, h, w)}
    for i, arr in imgs.items():
        write(root / "val2017" / f"{i:012d}.png", arr)
    images = [{"id": i, "file_name": f"{i:012d}.png", "height": h, "width": w} for i in imgs]
    person = np.zeros((h, w), bool)
    person[4:10, 20:26] = True
    crowd = np.zeros((h, w), bool)
    crowd[15:20, 0:3] = True
    anns = [
        {"id": 10, "image_id": 1, "category_id": 18, "iscrowd": 0, "area": 48.0, "bbox": [2, 2, 8, 6],
         "segmentation": [[2, 2, 10, 2, 10, 8, 2, 8]]},
        {"id": 11, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 36.0, "bbox": [20, 4, 6, 6],
         "segmentation": {"size": [h, w], "counts": counts_to_rle_string(mask_to_rle_counts(person))}},
        {"id": 12, "image_id": 1, "category_id": 1, "iscrowd": 1, "area": 15.0, "bbox": [0, 15, 3, 5],
         "segmentation": {"size": [h, w], "counts": mask_to_rle_counts(crowd)}},
        {"id": 13, "image_id": 2, "category_id": 44, "iscrowd": 0, "area": 400.0, "bbox": [0, 0, 20, 20],
         "segmentation": [[0, 0, 20, 0, 20, 20, 0, 20]]},
    ]
    cats = [{"id": 44, "name": "bottle"}, {"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))
    caps = [{"id": 5, "image_id": 2, "caption": " A bottle on a table. "},
            {"id": 3, "image_id": 1, "caption": "A dog next to a person."},
            {"id": 4, "image_id": 1, "caption": "Two friends."}]
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps({"images": images, "annotations": caps}))
    return {"imgs": imgs, "person": person, "crowd": crowd}


def test_coco_captions_t2i(tmp_path):
    fx = _coco_fixture(tmp_path)
    src = opened("coco_captions", tmp_path, "val", seed=3)
    assert len(src) == 3 and src.tasks == ("t2i",)
    samples = list(src)
    assert [s.slots["caption"] for s in samples] == ["A dog next to a person.", "Two friends.", "A bottle on a table."]
    for s in samples:
        assert s.task == "t2i" and s.meta["source"] == "coco_captions"
        value = 255 if s.meta["canvas"] == "white" else 0
        assert (s.input == value).all() and s.input.shape == (24, 32, 3)
    assert np.array_equal(samples[0].truth["image"], fx["imgs"][1])
    assert np.array_equal(samples[2].truth["image"], fx["imgs"][2])
    again = [s.meta["canvas"] for s in open_source("coco_captions", tmp_path, "val", seed=3)]
    assert again == [s.meta["canvas"] for s in samples]


def test_coco_instances_semseg_and_grounding(tmp_path):
    fx = _coco_fixture(tmp_path)
    src = opened("coco_instances", tmp_path, "val", tasks=("semseg", "refseg_mask", "refbox"), seed=1)
    # image 1: semseg + 2 categories x 2 tasks; image 2: semseg + 1 category x 2 tasks
    assert len(src) == 1 + 4 + 1 + 2
    sem = src[0]
    assert sem.task == "semseg" and sem.meta["classes"] == ["background", "person", "dog", "bottle"]
    json.dumps(sem.meta)  # meta must be JSON-able for the shard manifest
    expected = np.zeros((24, 32), np.int32)
    expected[2:8, 2:10] = 2
    expected[fx["person"] | fx["crowd"]] = 1
    assert np.array_equal(sem.truth["labels"], expected)
    person_mask = src[1]  # categories in id order: person (1) first
    assert person_mask.task == "refseg_mask" and person_mask.slots == {"object": "person"}
    assert np.array_equal(person_mask.truth["mask"], fx["person"] | fx["crowd"])
    person_box = src[2]
    assert person_box.task == "refbox" and person_box.slots["colour"] in colour_names()
    assert person_box.truth["boxes"].tolist() == [[20, 4, 26, 10], [0, 15, 3, 20]]
    assert src[3].slots["object"] == "dog" and src[3].truth["mask"].sum() == 48
    bottle = src[6]
    assert bottle.slots["object"] == "bottle" and bottle.truth["mask"][:20, :20].all()


def test_coco_panoptic_semseg(tmp_path):
    fx = _coco_fixture(tmp_path)
    ids = np.zeros((24, 32), np.int64)
    ids[:12] = 7001
    ids[12:, 5:9] = 300
    png = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)
    write(tmp_path / "annotations" / "panoptic_val2017" / "000000000001.png", png)
    pan = {"images": [{"id": 1, "file_name": "000000000001.png", "height": 24, "width": 32}],
           "annotations": [{"image_id": 1, "file_name": "000000000001.png",
                            "segments_info": [{"id": 7001, "category_id": 184}, {"id": 300, "category_id": 1}]}],
           "categories": [{"id": 1, "name": "person", "isthing": 1}, {"id": 184, "name": "tree-merged", "isthing": 0}]}
    (tmp_path / "annotations" / "panoptic_val2017.json").write_text(json.dumps(pan))
    (s,) = list(opened("coco_panoptic", tmp_path, "val"))
    assert s.meta["classes"] == ["background", "person", "tree-merged"]
    expected = np.zeros((24, 32), np.int32)
    expected[:12] = 2
    expected[12:, 5:9] = 1
    assert np.array_equal(s.truth["labels"], expected) and np.array_equal(s.input, fx["imgs"][1])


# -------------------------------------------------------------------------------------- RefCOCO


def _refer_images(data: Path) -> dict:
    h, w = 20, 30
    out = {}
    for i in (7, 8):
        out[i] = write(data / "images" / "mscoco" / "images" / "train2014" / f"COCO_train2014_{i:012d}.png",
                       rand_img(i, h, w))
    return {"images": [{"id": i, "file_name": f"COCO_train2014_{i:012d}.png", "height": h, "width": w} for i in out],
            "annotations": [
                {"id": 70, "image_id": 7, "category_id": 1, "bbox": [1, 1, 5, 4], "iscrowd": 0,
                 "segmentation": [[1, 1, 6, 1, 6, 5, 1, 5]]},
                {"id": 71, "image_id": 7, "category_id": 3, "bbox": [10, 10, 4, 2], "iscrowd": 0,
                 "segmentation": {"size": [h, w], "counts": counts_to_rle_string(
                     mask_to_rle_counts(np.pad(np.ones((2, 4), bool), ((10, 8), (10, 16)))))}},
                {"id": 80, "image_id": 8, "category_id": 1, "bbox": [0, 0, 2, 2], "iscrowd": 0,
                 "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]}],
            "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]}


def test_refcoco_pickle_refs(tmp_path):
    data = tmp_path / "data"
    inst = _refer_images(data)
    root = data / "refcoco"
    root.mkdir()
    (root / "instances.json").write_text(json.dumps(inst))
    refs = [
        {"ref_id": 2, "image_id": 7, "ann_id": 71, "split": "val", "category_id": 3,
         "file_name": "COCO_train2014_000000000007_71.jpg",
         "sentences": [{"sent": "red car on the right", "raw": "Red car on the right", "sent_id": 20},
                       {"sent": "car", "raw": "car", "sent_id": 21}]},
        {"ref_id": 1, "image_id": 7, "ann_id": 70, "split": "val", "category_id": 1,
         "sentences": [{"sent": "man left", "raw": "man left", "sent_id": 10}]},
        {"ref_id": 3, "image_id": 8, "ann_id": 80, "split": "testA", "category_id": 1,
         "sentences": [{"sent": "kid", "raw": "kid", "sent_id": 30}]},
    ]
    (root / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    src = opened("refcoco", root, "val", seed=5)
    assert src.tasks == ("refseg_mask", "refseg_overlay", "refbox") and len(src) == 3 * 3
    first = src[0]  # ref 1 (sorted by ref_id), its only sentence, refseg_mask
    assert first.task == "refseg_mask" and first.slots == {"object": "man left"}
    assert first.truth["mask"].sum() == 20 and first.truth["mask"][1:5, 1:6].all()
    assert first.truth["boxes"].tolist() == [[1, 1, 6, 5]]
    overlay = src[4]  # ref 2, sentence 0, overlay
    assert overlay.task == "refseg_overlay" and overlay.slots["object"] == "red car on the right"
    assert overlay.slots["colour"] in colour_names() and overlay.meta["sent_id"] == 20
    assert overlay.truth["mask"].sum() == 8 and overlay.truth["mask"][10:12, 10:14].all()
    assert np.array_equal(overlay.input, np.asarray(Image.open(data / "images/mscoco/images/train2014/"
                                                                      "COCO_train2014_000000000007.png")))
    assert open_source("refcoco", root, "val", seed=5)[4].slots == overlay.slots
    assert len(opened("refcoco", root, "testA", tasks=("refbox",))) == 1
    with pytest.raises(ValueError, match="splits present"):
        open_source("refcoco", root, "testB")


def test_refs_pickle_with_code_is_refused(tmp_path):
    root = tmp_path / "refcoco+"
    root.mkdir()
    (root / "instances.json").write_text(json.dumps(_refer_images(tmp_path)))
    (root / "refs(unc).p").write_bytes(pickle.dumps([Path("x")]))  # a class reference, not plain data
    with pytest.raises(SourceLayoutError, match="only plain data"):
        opened("refcoco+", root, "val")
    (root / "refs(unc).p").write_bytes(pickle.dumps([]))
    with pytest.raises(ValueError, match="no refs"):
        open_source("refcoco+", root, "val")


def test_refcocog_umd_and_grefcoco_multi_and_no_target(tmp_path):
    data = tmp_path / "data"
    inst = _refer_images(data)
    for name in ("refcocog", "grefcoco"):
        (data / name).mkdir()
        (data / name / "instances.json").write_text(json.dumps(inst))
    umd = [{"ref_id": 1, "image_id": 8, "ann_id": 80, "split": "test",
            "sentences": [{"sent": "a child", "sent_id": 1}]}]
    (data / "refcocog" / "refs(umd).p").write_bytes(pickle.dumps(umd))
    (s,) = opened("refcocog", data / "refcocog", "test", tasks=("refseg_mask",))
    assert s.slots["object"] == "a child" and s.truth["mask"].sum() == 4 and s.meta["split_by"] == "umd"
    grefs = [{"ref_id": 1, "image_id": 7, "ann_id": [70, 71], "no_target": False, "split": "val",
              "sentences": [{"sent": "the man and the car", "sent_id": 1}]},
             {"ref_id": 2, "image_id": 7, "ann_id": [-1], "no_target": True, "split": "val",
              "sentences": [{"sent": "the dog", "sent_id": 2}]}]
    (data / "grefcoco" / "grefs(unc).json").write_text(json.dumps(grefs))
    multi, empty = opened("grefcoco", data / "grefcoco", "val", tasks=("refbox",))
    assert multi.truth["mask"].sum() == 28 and multi.truth["boxes"].shape == (2, 4)
    assert not empty.truth["mask"].any() and empty.truth["boxes"].shape == (0, 4)


# ----------------------------------------------------------------------------------------- NYUv2


def test_nyuv2_depth_png_in_mm_and_normals(tmp_path):
    root = tmp_path / "nyu_depth_v2"
    h, w = 24, 32
    depth_mm = np.full((h, w), 2500, np.uint16)
    depth_mm[:, :4] = 0  # no reading
    depth_mm[0, 10] = 1234
    write(root / "official_splits" / "test" / "bathroom" / "rgb_00045.jpg", flat_img(90, h, w), quality=95)
    write(root / "official_splits" / "test" / "bathroom" / "sync_depth_00045.png", depth_mm)
    write(root / "official_splits" / "test" / "kitchen" / "rgb_00050.jpg", flat_img(40, h, w), quality=95)
    write(root / "sync" / "kitchen_0028b" / "rgb_00001.jpg", flat_img(10, h, w), quality=95)
    write(root / "sync" / "kitchen_0028b" / "sync_depth_00001.png", depth_mm)
    src = opened("nyuv2", root, "test", tasks=("depth", "normals"))
    assert len(src) == 4 and src.tasks == ("depth", "normals")
    d, n = src[0], src[1]
    with pytest.raises(CorruptSourceError, match="sync_depth_00050.png: file is missing"):
        src[2]  # kitchen/rgb_00050 has no depth PNG
    assert d.task == "depth" and np.abs(d.input.astype(int) - 90).max() <= 2
    assert d.truth["depth"].dtype == np.float32 and np.isnan(d.truth["depth"][:, :4]).all()
    assert d.truth["depth"][5, 20] == pytest.approx(2.5) and d.truth["depth"][0, 10] == pytest.approx(1.234)
    assert n.task == "normals" and n.meta["normals_from"] == "depth"
    json.dumps(n.meta)
    assert np.allclose(n.truth["normals"][10, 20], [0, 0, 1], atol=1e-6)  # fronto-parallel wall
    assert np.isnan(n.truth["normals"][:, :4]).all()
    assert len(opened("nyuv2", root, "train")) == 1
    lst = tmp_path / "nyudepthv2_train_files_with_gt.txt"
    lst.write_text("/kitchen_0028b/rgb_00001.jpg /kitchen_0028b/sync_depth_00001.png 518.8579\n"
                   "/kitchen_0028b/rgb_00002.jpg None 518.8579\n")
    assert len(open_source("nyuv2", root, "train", split_file=lst)) == 1


def test_normals_from_depth_tilted_plane():
    h, w = 48, 64
    fx = fy = 60.0
    cx, cy = 32.0, 24.0
    # plane with unit normal n (OpenCV frame, facing the camera) at distance 2: n . P = -2
    n_cv = np.array([0.3, -0.4, -1.0])
    n_cv /= np.linalg.norm(n_cv)
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1)
    depth = (-2.0 / (rays @ n_cv)).astype(np.float32)
    normals = normals_from_depth(depth, (fx, fy, cx, cy))
    expected = n_cv * np.array([1, -1, -1])  # sample frame: y up, z toward the camera
    assert np.allclose(normals[5:-5, 5:-5], expected, atol=1e-3)


# ----------------------------------------------------------------------------------------- ADE20K


def test_ade20k_labels(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    labels = np.zeros((20, 28), np.uint8)
    labels[:10] = 3
    labels[10:, :7] = 150
    write(root / "images" / "validation" / "ADE_val_00000001.jpg", flat_img(120, 20, 28), quality=95)
    write(root / "annotations" / "validation" / "ADE_val_00000001.png", labels)
    write(root / "images" / "training" / "ADE_train_00000001.jpg", flat_img(0, 20, 28), quality=95)
    write(root / "annotations" / "training" / "ADE_train_00000002.png", labels)
    (s,) = list(opened("ade20k", tmp_path, "validation"))  # parent of ADEChallengeData2016 works too
    assert s.task == "semseg" and s.truth["labels"].dtype == np.int32
    assert np.array_equal(s.truth["labels"], labels.astype(np.int32))
    classes = s.meta["classes"]
    assert len(classes) == 151 and classes[0] == "other" and classes[3] == "sky" and classes[150] == "flag"
    info = "Idx\tRatio\tTrain\tVal\tName\n" + "".join(f"{k}\t0.1\t1\t1\tname{k};alias{k}\n" for k in range(1, 151))
    (root / "objectInfo150.txt").write_text(info)
    classes = open_source("ade20k", root, "val")[0].meta["classes"]
    assert classes[0] == "other" and classes[1] == "name1" and classes[150] == "name150"
    train = open_source("ade20k", root, "train")
    with pytest.raises(CorruptSourceError, match="missing"):
        train[0]  # the annotation PNG of ADE_train_00000001 does not exist


# ---------------------------------------------------------------------------------- restoration


def test_sidd_medium_png_and_validation_mat(tmp_path):
    scene = tmp_path / "SIDD_Medium_Srgb" / "Data" / "0001_001_S6_00100_00060_3200_L"
    noisy, gt = rand_img(1), rand_img(2)
    write(scene / "0001_NOISY_SRGB_010.PNG", noisy)
    write(scene / "0001_GT_SRGB_010.PNG", gt)
    (s,) = list(opened("sidd", tmp_path, "train"))
    assert s.task == "denoise" and np.array_equal(s.input, noisy) and np.array_equal(s.truth["image"], gt)
    blocks_noisy = np.random.default_rng(3).integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8)
    blocks_gt = np.random.default_rng(4).integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8)
    savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": blocks_noisy})
    savemat(tmp_path / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": blocks_gt})
    val = open_source("sidd", tmp_path, "val")
    assert len(val) == 6
    s = val[4]  # image 1, block 1
    assert np.array_equal(s.input, blocks_noisy[1, 1]) and np.array_equal(s.truth["image"], blocks_gt[1, 1])


@pytest.mark.parametrize("layout", [("rainy", "rain-{:03d}.png", "norain", "norain-{:03d}.png"),
                                    ("input", "{}.png", "target", "{}.png")])
def test_rain100_both_layouts(tmp_path, layout):
    in_dir, in_pat, out_dir, out_pat = layout
    root = tmp_path / "Rain100L"
    pairs = {k: (rand_img(k), rand_img(10 + k)) for k in (1, 2)}
    for k, (rainy, clean) in pairs.items():
        write(root / in_dir / in_pat.format(k), rainy)
        write(root / out_dir / out_pat.format(k), clean)
    src = opened("rain100l", root)
    assert len(src) == 2 and src.tasks == ("derain",)
    for k, s in zip((1, 2), src):
        assert s.task == "derain" and np.array_equal(s.input, pairs[k][0])
        assert np.array_equal(s.truth["image"], pairs[k][1])
    assert len(open_source("rain100h", root)) == 2


def test_gopro_lolv2_snow100k(tmp_path):
    gopro = tmp_path / "GOPRO_Large" / "test"
    for seq, k in (("GOPR0384_11_00", 1), ("GOPR0384_11_05", 2)):
        write(gopro / seq / "blur" / "000001.png", rand_img(k))
        write(gopro / seq / "sharp" / "000001.png", rand_img(k + 100))
    src = opened("gopro", tmp_path, "test")
    assert len(src) == 2 and src[1].task == "deblur_motion"
    assert np.array_equal(src[1].input, rand_img(2)) and np.array_equal(src[1].truth["image"], rand_img(102))

    lol = tmp_path / "LOL-v2" / "Real_captured" / "Test"
    write(lol / "Low" / "low00690.png", rand_img(5))
    write(lol / "Normal" / "normal00690.png", rand_img(6))
    (s,) = list(opened("lolv2", tmp_path / "LOL-v2", "test"))
    assert s.task == "lowlight" and np.array_equal(s.input, rand_img(5))
    assert np.array_equal(s.truth["image"], rand_img(6))

    snow = tmp_path / "Snow100K" / "test" / "Snow100K-L"
    write(snow / "synthetic" / "beautiful_smile_00003.jpg", flat_img(200), quality=95)
    write(snow / "gt" / "beautiful_smile_00003.jpg", flat_img(60), quality=95)
    (s,) = list(opened("snow100k", tmp_path / "Snow100K", "test"))
    assert s.task == "desnow" and abs(int(s.input[5, 5, 0]) - 200) <= 2
    assert abs(int(s.truth["image"][5, 5, 0]) - 60) <= 2


def test_sots_pairs_by_id_and_centre_crops_small_mismatch(tmp_path):
    root = tmp_path / "SOTS"
    gt_big = rand_img(7, 28, 36)
    write(root / "indoor" / "hazy" / "1400_1.png", rand_img(8, 24, 32))
    write(root / "indoor" / "hazy" / "1400_2.png", rand_img(9, 24, 32))
    write(root / "indoor" / "gt" / "1400.png", gt_big)
    write(root / "indoor" / "hazy" / "1401_1.png", rand_img(10, 24, 32))  # no gt
    src = opened("sots", root, "test", subset="indoor")
    assert len(src) == 3
    s = src[0]
    assert s.task == "dehaze" and s.input.shape == s.truth["image"].shape == (24, 32, 3)
    assert np.array_equal(s.truth["image"], gt_big[2:26, 2:34])
    assert s.meta["aligned"] == {"input_hw": [24, 32], "target_hw": [28, 36], "cropped_to_hw": [24, 32],
                                 "method": "centre_crop"}
    json.dumps(s.meta)
    with pytest.raises(CorruptSourceError, match="no clean target"):
        src[2]
    with pytest.raises(CorruptSourceError, match="differ by more than 2 px"):
        open_source("sots", root, "test", subset="indoor", max_mismatch=2)[0]


def test_div2k_upsamples_lr_to_hr(tmp_path):
    hr = rand_img(11, 32, 48)
    lr2 = cv2.resize(hr, (24, 16), interpolation=cv2.INTER_AREA)
    lr4 = cv2.resize(hr, (12, 8), interpolation=cv2.INTER_AREA)
    write(tmp_path / "DIV2K_valid_HR" / "0801.png", hr)
    write(tmp_path / "DIV2K_valid_LR_bicubic" / "X2" / "0801x2.png", lr2)
    write(tmp_path / "DIV2K_valid_LR_bicubic" / "X4" / "0801x4.png", lr4)
    src = opened("div2k", tmp_path, "val")
    assert src.tasks == ("sr_x2", "sr_x4") and len(src) == 2
    x2, x4 = src
    assert x2.task == "sr_x2" and x2.slots == {"scale": "2"} and x4.slots == {"scale": "4"}
    assert x2.input.shape == x4.input.shape == hr.shape and np.array_equal(x2.truth["image"], hr)
    assert np.array_equal(x4.input, cv2.resize(lr4, (48, 32), interpolation=cv2.INTER_CUBIC))
    assert x4.meta["input_hw"] == [8, 12]
    assert len(open_source("div2k", tmp_path, "val", scales=(4,))) == 1


# -------------------------------------------------------------------------------------- editing


def test_classify_edit_table():
    assert classify_edit("Remove the dog from the sofa") == ("edit_remove", "edit_remove")
    assert classify_edit("make the car red")[0] == "edit_recolor"
    assert classify_edit("add a hat to the man")[0] == "edit_add"
    assert classify_edit("change the background to a beach")[0] == "edit_background"
    assert classify_edit("turn it into a watercolor painting")[0] == "style_watercolor"
    assert classify_edit("have the cat wear sunglasses") == ("edit_replace", "default")
    assert classify_edit("zzz", default_task="edit_add") == ("edit_add", "default")


def test_magicbrush_sessions(tmp_path):
    root = tmp_path / "MagicBrush"
    d = root / "dev" / "images" / "327726"
    write(d / "327726-input.png", rand_img(1))
    write(d / "327726-output1.png", rand_img(2))
    write(d / "327726-output2.png", rand_img(3))
    mask = np.dstack([rand_img(1), np.full((24, 32), 255, np.uint8)])
    mask[5:10, 6:12, 3] = 0  # the brushed region is erased to transparent
    write(d / "327726-mask1.png", mask)
    write(d / "327726-mask2.png", mask)
    sessions = {"327726": [
        {"input": "327726-input.png", "mask": "327726-mask1.png", "output": "327726-output1.png",
         "instruction": "Remove the dog"},
        {"input": "327726-output1.png", "mask": "327726-mask2.png", "output": "327726-output2.png",
         "instruction": "make the car red"}]}
    (root / "dev" / "edit_sessions.json").write_text(json.dumps(sessions))
    first, second = opened("magicbrush", root, "dev")
    assert first.task == "edit_remove" and first.meta["instruction"] == "Remove the dog" and first.slots == {}
    assert np.array_equal(first.input, rand_img(1)) and np.array_equal(first.truth["image"], rand_img(2))
    expected = np.zeros((24, 32), bool)
    expected[5:10, 6:12] = True
    assert np.array_equal(first.truth["mask"], expected)
    assert second.task == "edit_recolor" and np.array_equal(second.input, rand_img(2)) and second.meta["turn"] == 1


def test_instructpix2pix_seeds_and_splits(tmp_path):
    root = tmp_path / "clip-filtered-dataset"
    edits = ["turn it into a watercolor painting", "add fireworks", "remove the boat"]
    for k, edit in enumerate(edits):
        d = root / f"{k:07d}"
        d.mkdir(parents=True)
        (d / "prompt.json").write_text(json.dumps({"input": "a lake", "edit": edit, "output": "a lake, edited"}))
        write(d / f"{100 + k}_0.jpg", flat_img(30 + k), quality=95)
        write(d / f"{100 + k}_1.jpg", flat_img(130 + k), quality=95)
    (root / "seeds.json").write_text(json.dumps([[f"{k:07d}", [100 + k]] for k in range(3)]))
    train = opened("instructpix2pix", root, "train")
    assert len(train) == 2  # floor(0.9 * 3) prompts
    s = train[0]
    assert s.task == "style_watercolor" and s.meta["instruction"] == edits[0]
    assert abs(int(s.input[3, 3, 0]) - 30) <= 2 and abs(int(s.truth["image"][3, 3, 0]) - 130) <= 2
    (t,) = list(open_source("instructpix2pix", root, "test"))
    assert t.task == "edit_remove" and t.meta["prompt_dir"] == "0000002"
    (root / "seeds.json").unlink()
    assert [x.task for x in open_source("instructpix2pix", root, "train")] == [
        "style_watercolor", "edit_add", "edit_remove"]


# -------------------------------------------------------------------------------- errors, registry


def test_corrupt_image_raises_corrupt_source_error(tmp_path):
    root = tmp_path / "Rain100H"
    write(root / "rainy" / "rain-001.png", rand_img(1))
    write(root / "norain" / "norain-001.png", rand_img(2))
    good = write(root / "rainy" / "rain-002.png", rand_img(3))
    write(root / "norain" / "norain-002.png", rand_img(4))
    good.write_bytes(good.read_bytes()[:60])  # truncated PNG
    src = open_source("rain100h", root, "test")
    assert src[0].task == "derain"
    with pytest.raises(CorruptSourceError) as info:
        src[1]
    assert info.value.path.endswith("rain-002.png") and "cannot decode" in info.value.reason
    (root / "norain" / "norain-001.png").write_bytes(b"not an image at all")
    with pytest.raises(CorruptSourceError):
        src[0]


def test_clear_errors_for_bad_roots_names_and_options(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_source("ade20k", tmp_path / "nope")
    with pytest.raises(SourceLayoutError, match=r"images/validation/\*\.jpg"):
        open_source("ade20k", tmp_path)
    with pytest.raises(SourceLayoutError, match="rainy"):
        open_source("rain100l", tmp_path)
    with pytest.raises(SourceLayoutError, match="captions_val2017.json"):
        open_source("coco_captions", tmp_path)
    with pytest.raises(SourceLayoutError, match=r"refs\(unc\).p"):
        open_source("refcoco", tmp_path)
    with pytest.raises(ValueError, match="did you mean ade20k"):
        open_source("ade20", tmp_path)
    with pytest.raises(ValueError, match="unknown option"):
        open_source("gopro", tmp_path, "test", blur="blur_gamma")
    with pytest.raises(ValueError, match="grounding tasks"):
        open_source("refcoco", tmp_path, tasks=("semseg",))


def test_every_registered_source_has_a_fixture_test():
    # every adapter in SOURCES is opened on a native-layout fixture by some test in this file
    import re
    opened_names = set(re.findall(r'(?:opened|open_source)\("([^"]+)"', Path(__file__).read_text()))
    assert set(SOURCES) - opened_names == set()
