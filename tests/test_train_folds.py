"""jetseg train's sequence hold-out: --holdout, --folds sequences (report, resume), the final
train + val model (--train-split trainval --no-val), and bad input as one line + exit 2.
Synthetic CamVid-layout frames named SEQUENCE_FRAME.png and a tiny net: seconds a test."""
import argparse
import csv
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jetseg.eval import metrics  # noqa: E402
from jetseg_export import archs  # noqa: E402
from jetseg_export.train import build_parser, main  # noqa: E402

# sequence -> frames in train/ and in val/ (seqC is in both, as CamVid's 0016E5 is)
LAYOUT = {"seqA": (3, 0), "seqB": (3, 0), "seqC": (2, 2)}


def _write_frames(root, layout, name="{seq}_{split}{i:03d}.png"):
    rng = np.random.RandomState(0)
    for split in ("train", "val"):
        os.makedirs(str(root / split), exist_ok=True)
        os.makedirs(str(root / (split + "annot")), exist_ok=True)
    for seq, counts in sorted(layout.items()):
        for split, n in zip(("train", "val"), counts):
            for i in range(n):
                lab = np.full((24, 32), 3, np.uint8)              # Road
                lab[:rng.randint(8, 16)] = 0                       # Sky
                img = np.where(lab[..., None] == 0, (200, 160, 120), (120, 60, 120))
                img = np.clip(img + rng.randint(-15, 15, img.shape), 0, 255).astype(np.uint8)
                f = name.format(seq=seq, split=split, i=i)
                cv2.imwrite(str(root / split / f), img)
                cv2.imwrite(str(root / (split + "annot") / f), lab)
    return root


@pytest.fixture(scope="module")
def seq_camvid(tmp_path_factory):
    return _write_frames(tmp_path_factory.mktemp("seqcamvid"), LAYOUT)


class Tiny(torch.nn.Module):
    """Two convolutions: enough to train and export, fast enough for a test."""

    def __init__(self, num_classes):
        super(Tiny, self).__init__()
        self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.b = torch.nn.Conv2d(8, num_classes, 1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.fixture(autouse=True)
def tiny_arch(monkeypatch):
    monkeypatch.setitem(archs.ARCHS, "tiny", Tiny)


def _train(root, out, *extra, epochs=1):
    return main(["--arch", "tiny", "--dataset", str(root), "--input-size", "32x24",
                 "--epochs", str(epochs), "--batch-size", "2", "--workers", "0",
                 "--threads", "1", "--quiet", "-o", str(out)] + list(extra))


def _seq(path):
    return os.path.basename(path).split("_")[0]


def _frames(folder):
    with open(str(folder / "frames.json")) as f:
        return json.load(f)


def _epochs(folder):
    with open(str(folder / "log.csv")) as f:
        return [(int(r["epoch"]), float(r["loss"])) for r in csv.DictReader(f)]


def _all_images(root):
    return sorted(str(root / s / f) for s in ("train", "val") for f in os.listdir(str(root / s)))


def test_folds_never_share_a_sequence_and_report_each_fold(seq_camvid, tmp_path, capsys):
    out = tmp_path / "folds"
    assert _train(seq_camvid, out, "--folds", "sequences") == 0
    printed = capsys.readouterr().out
    for seq in LAYOUT:
        used = _frames(out / ("fold-" + seq))
        train = set(_seq(p) for p in used["train"]["images"])
        val = set(_seq(p) for p in used["val"]["images"])
        assert val == {seq} and seq not in train and train | val == set(LAYOUT)
        assert used["holdout"] == [seq] and used["val"]["frames"] == sum(LAYOUT[seq])
        # train + val pooled: every frame is used once, the val/ folder's too
        assert sorted(used["train"]["images"] + used["val"]["images"]) == _all_images(seq_camvid)
        assert "hold out {}".format(seq) in printed
    with open(str(out / "folds.json")) as f:
        report = json.load(f)
    assert report["complete"] and [r["holdout"] for r in report["fold_results"]] == \
        sorted(LAYOUT)
    mious = []
    for r in report["fold_results"]:        # each fold's figure is its confusion's mIoU
        conf = np.array(r["confusion"])
        assert conf.sum() == r["val_frames"] * 24 * 32 and r["epoch"] == 1
        mious.append(metrics.miou(conf))
        assert r["miou"] == pytest.approx(mious[-1])
        assert r["per_class_iou"]["Sky"] == pytest.approx(metrics.per_class_iou(conf)[0])
    assert report["mean"]["miou"] == pytest.approx(np.mean(mious))
    table = (out / "folds.txt").read_text()
    assert all(s in table for s in LAYOUT) and "mean" in table and "Pedestrian" in table
    assert table in printed
    assert cv2.imread(str(out / "folds.png")).shape[0] > 200


def test_resume_continues_a_fold_and_keeps_complete_ones(seq_camvid, tmp_path, capsys):
    out = tmp_path / "folds"
    assert _train(seq_camvid, out, "--folds", "sequences") == 0
    first = dict((s, _epochs(out / ("fold-" + s))) for s in LAYOUT)
    # interrupted in the third fold: its last.pth is gone, the other two are complete
    os.remove(str(out / "fold-seqC" / "last.pth"))
    capsys.readouterr()
    assert _train(seq_camvid, out, "--folds", "sequences", "--resume", epochs=2) == 0
    printed = capsys.readouterr().out
    for s in ("seqA", "seqB"):              # continued from epoch 1: the first row is kept
        rows = _epochs(out / ("fold-" + s))
        assert [e for e, _ in rows] == [0, 1] and rows[0] == first[s][0]
    assert [e for e, _ in _epochs(out / "fold-seqC")] == [0, 1]       # started again
    stamp = dict((s, os.path.getmtime(str(out / ("fold-" + s) / "last.pth"))) for s in LAYOUT)
    assert _train(seq_camvid, out, "--folds", "sequences", "--resume", epochs=2) == 0
    assert capsys.readouterr().out.count("not trained again") == 3
    assert stamp == dict((s, os.path.getmtime(str(out / ("fold-" + s) / "last.pth")))
                         for s in LAYOUT)
    with open(str(out / "folds.json")) as f:
        assert [r["epoch"] for r in json.load(f)["fold_results"]] == [2, 2, 2]
    assert "fold 3/3" in printed


def test_holdout_one_sequence_and_resume_it(seq_camvid, tmp_path):
    out = tmp_path / "h"
    assert _train(seq_camvid, out, "--holdout", "seqB") == 0
    assert set(_seq(p) for p in _frames(out)["val"]["images"]) == {"seqB"}
    assert _train(seq_camvid, out, "--holdout", "seqB", "--resume", epochs=2) == 0
    assert [e for e, _ in _epochs(out)] == [0, 1]
    ck = torch.load(str(out / "last.pth"), weights_only=True)
    assert ck["holdout"] == ["seqB"] and ck["confusion_epoch"] == 1


def test_final_model_on_train_and_val_without_validation(seq_camvid, tmp_path):
    out = tmp_path / "final"
    assert _train(seq_camvid, out, "--train-split", "trainval", "--no-val", epochs=2) == 0
    assert not (out / "best.pth").exists()
    used = _frames(out)
    assert used["val"] is None and sorted(used["train"]["images"]) == _all_images(seq_camvid)
    final = torch.load(str(out / "final.pth"), weights_only=True)
    last = torch.load(str(out / "last.pth"), weights_only=True)
    assert final["epoch"] == 1 and final["arch"] == "tiny" and "miou" not in final
    assert all(torch.equal(final["model"][k], last["model"][k]) for k in last["model"])
    with open(str(out / "log.csv")) as f:
        assert [r["miou"] for r in csv.DictReader(f)] == ["", ""]


def _one_line_exit_2(code, capsys, *expect):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("jetseg train: error: ") and all(e in err[0] for e in expect), err
    return err[0]


@pytest.mark.parametrize("extra, expect", [
    (["--holdout", "seqZ"], ["no sequence seqZ", "seqA 3, seqB 3, seqC 4", "--holdout seqA"]),
    (["--holdout", "seqA,seqB,seqC"], ["leaves no frames to train on"]),
    (["--holdout", "seqA", "--folds", "sequences"], ["--holdout and --folds"]),
    (["--folds", "sequences", "--no-val"], ["--no-val"]),
    (["--train-split", "trainval"], ["add --no-val"]),
])
def test_bad_fold_choices_are_one_line(seq_camvid, tmp_path, capsys, extra, expect):
    _one_line_exit_2(_train(seq_camvid, tmp_path / "x", *extra), capsys, *expect)
    assert not (tmp_path / "x" / "last.pth").exists()


def test_a_fold_with_no_frames_to_train_on(tmp_path, capsys):
    root = _write_frames(tmp_path / "one", {"seqA": (2, 2)})
    _one_line_exit_2(_train(root, tmp_path / "x", "--folds", "sequences"), capsys,
                     "holding out seqA leaves no frames to train on")


def test_frames_without_sequences(tmp_path, capsys):
    root = _write_frames(tmp_path / "plain", {"a": (2, 1), "b": (2, 0)}, name="{seq}{split}{i}.png")
    _one_line_exit_2(_train(root, tmp_path / "x", "--holdout", "a"), capsys,
                     "name no sequence", "SEQUENCE_FRAME")
    # a format that has no sequences at all (DIGITS folders)
    digits = tmp_path / "digits"
    for d in ("images", "labels"):
        os.makedirs(str(digits / d))
    for i in range(6):
        cv2.imwrite(str(digits / "images" / "s1_{}.png".format(i)), np.zeros((24, 32, 3), np.uint8))
        cv2.imwrite(str(digits / "labels" / "s1_{}.png".format(i)), np.zeros((24, 32), np.uint8))
    (digits / "classes.txt").write_text("ground\nsky\n")
    _one_line_exit_2(_train(digits, tmp_path / "y", "--format", "digits", "--holdout", "s1"),
                     capsys, "the digits format has none", "camvid")


def test_resume_with_another_holdout_is_refused(seq_camvid, tmp_path, capsys):
    assert _train(seq_camvid, tmp_path / "h", "--holdout", "seqA") == 0
    capsys.readouterr()
    _one_line_exit_2(_train(seq_camvid, tmp_path / "h", "--holdout", "seqB", "--resume"),
                     capsys, "holding out seqA, not seqB")


def test_every_train_flag_has_help_and_names_its_default():
    p = build_parser()
    assert p.description and "--holdout" in p.description
    for a in p._actions:
        assert a.help, "{}: no help text".format(a.option_strings)
        if a.nargs != 0 and a.default not in (None, False, argparse.SUPPRESS):
            assert "default" in a.help, "{}: default {!r} not shown".format(
                a.option_strings, a.default)


def test_export_help_lists_every_arch_train_can_build():
    # jetseg_export.cli keeps its own torch-free list for --help; it must name every arch
    # (asked in a fresh interpreter: this module registers a test-only arch in ARCHS)
    code = ("from jetseg_export.archs import ARCHS; from jetseg_export.cli import ARCH_NAMES; "
            "print(sorted(set(ARCHS) ^ set(ARCH_NAMES)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_export_carries_the_held_out_figure_and_info_says_what_it_means(seq_camvid, tmp_path,
                                                                        capsys):
    """The shipped model's metadata: the folds' mean held-out mIoU, each fold's, and what it
    means (a figure of the recipe: this file's own training saw every sequence)."""
    onnx = pytest.importorskip("onnx")
    from jetseg.cli import main as jetseg_main
    from jetseg_export.cli import main as export_main
    folds, final = tmp_path / "folds", tmp_path / "final"
    assert _train(seq_camvid, folds, "--folds", "sequences") == 0
    assert _train(seq_camvid, final, "--train-split", "trainval", "--no-val") == 0
    with open(str(folds / "folds.json")) as f:
        report = json.load(f)
    capsys.readouterr()
    out = tmp_path / "m.onnx"
    assert export_main(["--checkpoint", str(final / "final.pth"), "--held-out",
                        str(folds / "folds.json"), "--check-count", "1", "-q",
                        "-o", str(out)]) == 0
    meta = dict((p.key, json.loads(p.value)) for p in onnx.load(str(out)).metadata_props)
    held = meta["jetseg.heldout"]
    assert held["miou"] == pytest.approx(report["mean"]["miou"], abs=1e-4)
    assert held["folds"] == dict((r["holdout"], pytest.approx(r["miou"], abs=1e-4))
                                 for r in report["fold_results"])
    assert held["recipe"]["arch"] == "tiny" and "recipe_differs" not in held
    assert "never seen" in held["meaning"]
    capsys.readouterr()
    assert jetseg_main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    line = [ln for ln in text.splitlines() if ln.startswith("held-out mIoU:")]
    assert line and "{:.2f} %".format(100 * held["miou"]) in line[0], text
    assert all(seq in line[0] for seq in LAYOUT) and "held-out is:" in text
    # a report of another recipe is said so; an unfinished one is refused before exporting
    report["recipe"]["epochs"] = 7
    other = tmp_path / "other.json"
    other.write_text(json.dumps(report))
    assert export_main(["--checkpoint", str(final / "final.pth"), "--held-out", str(other),
                        "--check-count", "1", "-q", "-o", str(tmp_path / "o.onnx")]) == 0
    meta = dict((p.key, json.loads(p.value)) for p in
                onnx.load(str(tmp_path / "o.onnx")).metadata_props)
    assert meta["jetseg.heldout"]["recipe_differs"] == "7 epochs (folds) vs 1 (this model)"
    assert "another recipe" in capsys.readouterr().err
    report["complete"], report["folds_done"] = False, 2
    other.write_text(json.dumps(report))
    assert export_main(["--checkpoint", str(final / "final.pth"), "--held-out", str(other),
                        "-q", "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "incomplete (2 of 3 folds)" in err[0] and "--resume" in err[0]
    assert not (tmp_path / "x.onnx").exists()
