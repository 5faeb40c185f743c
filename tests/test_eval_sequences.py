"""jetseg eval --split train,val --sequence SEQ: a sequence fold's held-out frames, scored.

A tiny ONNX model over a synthetic CamVid-layout dataset with two sequences (AAA, BBB)
spread over the train and val splits: --sequence keeps exactly one sequence's frames and
scores them the same as a dataset holding only those frames; --split train,val pools both
splits (each image once); unknown sequences and formats without sequences are one line, exit 2.
"""
import json

import cv2
import numpy as np
import onnx
import pytest

from jetseg import Segmenter
from jetseg.eval.datasets.camvid import COLORS as CAMVID_COLORS
from jetseg.eval.datasets.camvid import NAMES as CAMVID_NAMES
from jetseg.eval.selection import open_selection
from jetseg_export.compose import compose
from tests.helpers.tinymodels import TinyNet, colour_frame
from tests.test_eval import _run

W, H = 64, 48
# (split, sequence, frame number); AAA has 3 train + 1 val frames, BBB 2 train + 1 val
FRAMES = [("train", "AAA", 10), ("train", "AAA", 11), ("train", "AAA", 12),
          ("train", "BBB", 20), ("train", "BBB", 21),
          ("val", "AAA", 13), ("val", "BBB", 22)]


@pytest.fixture
def model(tmp_path):
    net = TinyNet(num_classes=11, width=W, height=H, down=4, seed=3)
    path = tmp_path / "tiny11.onnx"
    onnx.save(compose(net.onnx(), CAMVID_NAMES, CAMVID_COLORS), str(path))
    return str(path)


def _sample(model, number):
    """Frame and a label: the model's answer, 30% of pixels changed, void top rows."""
    frame = colour_frame(W, H, seed=number)
    label = Segmenter(model, filter_mode="point").process(frame).classes.astype(np.uint8)
    rng = np.random.RandomState(number)
    flip = rng.rand(H, W) < 0.3
    label[flip] = rng.randint(0, 11, flip.sum())
    label[:3] = 11
    return frame, label


def _write(root, split, name, frame, label):
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / (split + "annot")).mkdir(exist_ok=True)
    cv2.imwrite(str(root / split / (name + ".png")), frame)
    cv2.imwrite(str(root / (split + "annot") / (name + ".png")), label)


@pytest.fixture
def data(tmp_path, model):
    """(two-sequence dataset, a dataset of AAA's frames only, in one 'val' split)."""
    both, only_a = tmp_path / "both", tmp_path / "only_a"
    for split, seq, n in FRAMES:
        frame, label = _sample(model, n)
        name = "{}_f{:05d}".format(seq, n)
        _write(both, split, name, frame, label)
        if seq == "AAA":
            _write(only_a, "val", name, frame, label)
    return both, only_a


def _eval(model, root, out, *extra):
    rc = _run(["eval", "--model", model, "--dataset", root, "--format", "camvid",
               "--filter-mode", "point", "--no-progress", "--out", out] + list(extra))
    assert rc == 0
    return json.loads((out / "eval.json").read_text())


def test_sequence_scores_exactly_its_frames(tmp_path, model, data, capsys):
    both, only_a = data
    d = _eval(model, both, tmp_path / "a", "--split", "train,val", "--sequence", "AAA")
    out = capsys.readouterr().out
    assert d["dataset"]["samples"] == 4 and d["results"][0]["images"] == 4
    assert d["dataset"]["splits"] == ["train", "val"] and d["dataset"]["sequences"] == ["AAA"]
    assert d["dataset"]["frames_per_sequence"] == {"AAA": 4}
    assert out.splitlines()[0] == "camvid train+val splits, sequence AAA: 4 frames"
    ref = _eval(model, only_a, tmp_path / "ref", "--split", "val")
    assert ref["results"][0]["images"] == 4
    assert d["results"][0]["confusion"] == ref["results"][0]["confusion"]
    got = [c["iou"] for c in d["results"][0]["per_class"]]
    want = [c["iou"] for c in ref["results"][0]["per_class"]]
    assert got == want and sum(v is not None for v in got) >= 5
    # the other sequence scores differently: the selection did change what was counted
    b = _eval(model, both, tmp_path / "b", "--split", "train,val", "--sequence", "BBB")
    assert b["dataset"]["samples"] == 3 and b["results"][0]["confusion"] != ref["results"][0][
        "confusion"]
    # one split, one sequence: only that split's frames of it
    v = _eval(model, both, tmp_path / "v", "--split", "val", "--sequence", "AAA,BBB")
    assert v["dataset"]["frames_per_sequence"] == {"AAA": 1, "BBB": 1}


def test_split_list_pools_each_image_once(tmp_path, model, data):
    both, _ = data
    train = _eval(model, both, tmp_path / "t", "--split", "train")
    val = _eval(model, both, tmp_path / "v", "--split", "val")
    pooled = _eval(model, both, tmp_path / "tv", "--split", "train,val,train")
    assert (train["dataset"]["samples"], val["dataset"]["samples"]) == (5, 2)
    assert pooled["dataset"]["samples"] == pooled["results"][0]["images"] == 7
    assert pooled["dataset"]["splits"] == ["train", "val"]
    assert pooled["dataset"]["sequences"] is None
    assert pooled["dataset"]["frames_per_sequence"] == {"AAA": 4, "BBB": 3}
    summed = (np.array(train["results"][0]["confusion"]) +
              np.array(val["results"][0]["confusion"])).tolist()
    assert pooled["results"][0]["confusion"] == summed
    ds = open_selection(both, "camvid", "train,val", "BBB")
    assert [ds.sequence(i) for i in range(len(ds))] == ["BBB"] * 3
    assert [p[0].rsplit("/", 2)[-2] for p in map(ds.paths, range(3))] == ["train"] * 2 + ["val"]


def test_unknown_sequence_is_one_line_exit_2(tmp_path, model, data, capsys):
    both, _ = data
    rc = _run(["eval", "--model", model, "--dataset", both, "--split", "train,val",
               "--sequence", "AAA,CCC", "--out", tmp_path / "x"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "no sequence CCC" in err and "AAA 4, BBB 3" in err and "--sequence AAA" in err
    assert not (tmp_path / "x").exists()
    rc = _run(["eval", "--model", model, "--dataset", both, "--split", "val",
               "--sequence", "AAA,CCC"])
    err = capsys.readouterr().err
    assert rc == 2 and "AAA 1, BBB 1" in err and "--split train,val" in err


def test_format_without_sequences_is_one_line_exit_2(tmp_path, model, capsys):
    root = tmp_path / "digits"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("\n".join(CAMVID_NAMES) + "\n")
    frame, label = _sample(model, 1)
    label[label == 11] = 0
    cv2.imwrite(str(root / "images" / "a_1.png"), frame)
    cv2.imwrite(str(root / "labels" / "a_1.png"), label)
    rc = _run(["eval", "--model", model, "--dataset", root, "--format", "digits",
               "--split", "all", "--sequence", "a"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "--sequence" in err and "digits format has none" in err and "drop --sequence" in err
