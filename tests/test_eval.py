"""jetseg eval: metrics against an independent confusion matrix, reports, the CLI."""
import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from jetseg import JetsegError, Segmenter
from jetseg.cli.common import run_guarded
from jetseg.eval.datasets import open_dataset
from jetseg.eval.datasets.camvid import COLORS as CAMVID_COLORS
from jetseg.eval.datasets.camvid import NAMES as CAMVID_NAMES
from jetseg.cli.eval import register
from jetseg.eval.evaluate import EvalResult, class_mapping, evaluate
from jetseg.eval.metrics import confusion_matrix
from jetseg.eval.report import draw_confusion, draw_iou_chart, format_table
from jetseg_export.compose import compose
from tests.helpers.tinymodels import TinyNet, colour_frame

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "datasets" / "camvid"
DEMO = ROOT / "engines" / "camvid-demo.onnx"


# ---- the independent reference: plain loops, no numpy tricks ------------------------------
def loop_confusion(gt, pred, n, ignore):
    cm = [[0] * n for _ in range(n)]
    for g, p in zip(np.asarray(gt).ravel().tolist(), np.asarray(pred).ravel().tolist()):
        if g == ignore:
            continue
        cm[g][p] += 1
    return cm


def loop_metrics(cm):
    n = len(cm)
    ious, accs = [], []
    total = correct = 0
    for c in range(n):
        tp = cm[c][c]
        gt = sum(cm[c])
        pred = sum(cm[r][c] for r in range(n))
        total += gt
        correct += tp
        if gt > 0:                               # classes present in the ground truth
            ious.append(tp / float(gt + pred - tp))
            accs.append(tp / float(gt))
    return {"miou": sum(ious) / len(ious), "pixel_accuracy": correct / float(total),
            "mean_accuracy": sum(accs) / len(accs)}


# ---- hand-computed cases -----------------------------------------------------------------
def test_hand_computed_ious():
    gt = np.array([[0, 0, 0, 1],
                   [1, 1, 2, 9]])               # 9 = ignore
    pred = np.array([[0, 0, 1, 1],
                     [1, 0, 2, 0]])
    r = EvalResult(["a", "b", "c"])
    r.add(gt, pred, ignore_index=9)
    # class a: TP 2, FN 1 (->b), FP 1 (from b): IoU 2/4; b: TP 2, FN 1, FP 1: 2/4; c: 1/1
    assert r.confusion.tolist() == [[2, 1, 0], [1, 2, 0], [0, 0, 1]]
    np.testing.assert_allclose(r.per_class_iou(), [0.5, 0.5, 1.0])
    assert r.miou == pytest.approx(2.0 / 3)
    assert r.pixel_accuracy == pytest.approx(5.0 / 7)
    assert r.mean_accuracy == pytest.approx((2 / 3.0 + 2 / 3.0 + 1) / 3)
    assert r.fw_iou == pytest.approx(3 / 7.0 * 0.5 + 3 / 7.0 * 0.5 + 1 / 7.0)


def test_ignored_pixels_never_count():
    gt = np.array([5, 5, 0, 1])
    a = confusion_matrix(gt, np.array([0, 1, 0, 1]), 2, ignore_index=5)
    b = confusion_matrix(gt, np.array([1, 0, 0, 1]), 2, ignore_index=5)
    assert a.tolist() == b.tolist() == [[1, 0], [0, 1]]


def test_class_absent_from_ground_truth_is_left_out_of_miou():
    gt = np.array([0, 0, 1, 1])
    r = EvalResult(["a", "b", "c", "d"])
    r.add(gt, np.array([0, 2, 1, 1]))           # c predicted but absent; d never seen
    iou = r.per_class_iou()
    assert iou[:3].tolist() == [0.5, 1.0, 0.0] and np.isnan(iou[3])
    assert r.present == [0, 1] and r.miou == pytest.approx(0.75)
    d = r.to_dict()
    assert d["per_class"][3]["iou"] is None and d["classes_scored"] == ["a", "b"]


def test_out_of_range_predictions():
    with pytest.raises(JetsegError, match="class id 7"):
        confusion_matrix(np.array([0, 1]), np.array([0, 7]), 2)
    cm = confusion_matrix(np.array([0, 1]), np.array([0, 7]), 2, extra_column=True)
    assert cm.tolist() == [[1, 0, 0], [0, 0, 1]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_independent_loops_on_random_maps(seed):
    rng = np.random.RandomState(seed)
    n, ignore = 5, 255
    r = EvalResult([str(i) for i in range(n)])
    ref = [[0] * n for _ in range(n)]
    for _ in range(3):
        gt = rng.randint(0, n, (17, 23))
        gt[rng.rand(17, 23) < 0.2] = ignore
        pred = np.where(rng.rand(17, 23) < 0.6, np.minimum(gt, n - 1), rng.randint(0, n, gt.shape))
        r.add(gt.astype(np.uint8), pred.astype(np.uint8), ignore)
        for i, row in enumerate(loop_confusion(gt, pred, n, ignore)):
            for j, v in enumerate(row):
                ref[i][j] += v
    assert r.confusion.tolist() == ref
    m = loop_metrics(ref)
    assert r.miou == pytest.approx(m["miou"], abs=1e-12)
    assert r.pixel_accuracy == pytest.approx(m["pixel_accuracy"], abs=1e-12)
    assert r.mean_accuracy == pytest.approx(m["mean_accuracy"], abs=1e-12)


def test_class_mapping_by_name():
    lut = class_mapping(["Sky", "Road", "void"], ["road", "sky"])
    assert lut[:3].tolist() == [1, 0, 2]              # void -> the 'unmatched' column
    with pytest.raises(JetsegError, match="no names in common"):
        class_mapping(["x", "y", "z"], ["a", "b"])
    assert class_mapping(["x", "y"], ["a", "b"])[:2].tolist() == [0, 1]   # same count: by id


# ---- a tiny ONNX model over a synthetic CamVid-format dataset ------------------------------
def _camvid_like(tmp_path, net_model, frames=4, w=64, h=48):
    """Frames + labels where the labels are the model's own answer, partly corrupted."""
    root = tmp_path / "synth"
    (root / "val").mkdir(parents=True)
    (root / "valannot").mkdir()
    seg = Segmenter(net_model, filter_mode="point")
    rng = np.random.RandomState(7)
    for k in range(frames):
        frame = colour_frame(w, h, seed=k)
        pred = seg.process(frame).classes
        label = pred.copy()
        flip = rng.rand(h, w) < 0.3
        label[flip] = rng.randint(0, 11, flip.sum())
        label[:4] = 11                                      # void rows
        cv2.imwrite(str(root / "val" / "f{:02d}.png".format(k)), frame)
        cv2.imwrite(str(root / "valannot" / "f{:02d}.png".format(k)), label)
    return root


@pytest.fixture
def camvid_model(tmp_path):
    net = TinyNet(num_classes=11, width=64, height=48, down=4, seed=3)
    path = tmp_path / "tiny11.onnx"
    onnx.save(compose(net.onnx(), CAMVID_NAMES, CAMVID_COLORS), str(path))
    return str(path)


def test_evaluate_tiny_model_matches_loops(tmp_path, camvid_model, capsys):
    root = _camvid_like(tmp_path, camvid_model)
    ds = open_dataset(root, "camvid", "val")
    seg = Segmenter(camvid_model, filter_mode="point")
    res = evaluate(seg, ds, progress=True)
    err = capsys.readouterr().err
    assert "4/4" in err and "fps" in err and "ETA" in err
    ref = [[0] * 11 for _ in range(11)]
    for i in range(len(ds)):
        image, gt = ds[i]
        pred = seg.process(image).classes
        for a, row in enumerate(loop_confusion(gt, pred, 11, 11)):
            for b, v in enumerate(row):
                ref[a][b] += v
    assert res.confusion.tolist() == ref and res.images == 4
    assert sum(map(sum, ref)) == 4 * 44 * 64                  # void rows left out
    assert res.miou == pytest.approx(loop_metrics(ref)["miou"], abs=1e-12)
    assert 0.3 < res.pixel_accuracy < 0.95                    # 30% of labels corrupted


def test_skip_bad_counts_bad_samples(tmp_path, camvid_model):
    root = _camvid_like(tmp_path, camvid_model, frames=3)
    cv2.imwrite(str(root / "valannot" / "f01.png"), np.zeros((10, 10), np.uint8))
    ds = open_dataset(root, "camvid", "val")
    seg = Segmenter(camvid_model)
    with pytest.raises(JetsegError, match="f01.png"):
        evaluate(seg, ds, progress=False)
    res = evaluate(seg, ds, progress=False, skip_bad=True)
    assert res.images == 2 and len(res.skipped) == 1 and "f01.png" in res.skipped[0][1]


# ---- pictures and the CLI ----------------------------------------------------------------
def _parser():
    p = argparse.ArgumentParser(prog="jetseg")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true")
    common.add_argument("--quiet", "-q", action="store_true")
    register(p.add_subparsers(dest="command"), common)
    return p


def _run(argv):
    return run_guarded(_parser(), lambda a: a.func(a), [str(a) for a in argv])


def test_cli_compare_writes_json_and_pictures(tmp_path, camvid_model, capsys):
    root = _camvid_like(tmp_path, camvid_model)
    other = TinyNet(num_classes=11, width=64, height=48, down=4, seed=4)
    other_path = tmp_path / "other.onnx"
    onnx.save(compose(other.onnx(), CAMVID_NAMES, CAMVID_COLORS), str(other_path))
    out = tmp_path / "report"
    rc = _run(["eval", "--model", camvid_model, "--dataset", root, "--split", "val",
               "--compare", other_path, "--out", out, "--filter-mode", "point"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "mIoU" in cap.out and "delta" in cap.out and "other.onnx" in cap.out
    d = json.loads((out / "eval.json").read_text())
    assert d["dataset"]["format"] == "camvid" and d["dataset"]["samples"] == 4
    assert len(d["results"]) == 2 and d["compare"][0]["model"] == str(other_path)
    a, b = (EvalResult.from_dict(r) for r in d["results"])
    assert a.miou == pytest.approx(d["results"][0]["miou"]) == pytest.approx(d["miou"])
    assert d["compare"][0]["miou_delta"] == pytest.approx(b.miou - a.miou)
    assert set(d["compare"][0]["per_class_iou_delta"]) == set(CAMVID_NAMES)
    # the json's figures are the same as evaluating in-process (label = the first model)
    res = evaluate(Segmenter(camvid_model, filter_mode="point"),
                   open_dataset(root, "camvid", "val"), progress=False)
    assert res.confusion.tolist() == d["results"][0]["confusion"]
    assert "void" not in json.dumps(d["results"][0]["per_class"])
    for name, want in (("iou.png", draw_iou_chart([a, b], CAMVID_COLORS)),
                       ("confusion.png", draw_confusion(a)),
                       ("confusion_2.png", draw_confusion(b))):
        img = cv2.imread(str(out / name))
        assert img is not None and img.shape == want.shape, name
        assert img.shape[0] > 200 and img.shape[1] > 300 and img.std() > 10
    assert format_table([a, b]).count("\n") >= 11


def test_cli_errors_are_one_line(tmp_path, camvid_model, capsys):
    rc = _run(["eval", "--model", camvid_model, "--dataset", tmp_path / "missing"])
    err = capsys.readouterr().err
    assert rc == 2 and "missing" in err and "not found" in err and len(err.splitlines()) == 1
    rc = _run(["eval", "--model", camvid_model, "--dataset", tmp_path, "--limit", "0"])
    assert rc == 2 and "--limit" in capsys.readouterr().err
    rc = _run(["eval", "--model", camvid_model, "--dataset", tmp_path, "--compare",
               tmp_path / "nope.onnx"])
    assert rc == 2 and "nope.onnx" in capsys.readouterr().err


def test_real_camvid_demo_model(tmp_path, capsys):
    if not (CAMVID / "val").is_dir():
        pytest.skip("CamVid not found at {}".format(CAMVID))
    if not DEMO.exists():
        pytest.skip("{} not built yet (the shipped demo model)".format(DEMO))
    out = tmp_path / "camvid"
    rc = _run(["eval", "--model", DEMO, "--dataset", CAMVID, "--format", "camvid",
               "--split", "val", "--limit", "10", "--out", out])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    d = json.loads((out / "eval.json").read_text())
    r = d["results"][0]
    assert r["images"] == 10 and 0.0 <= r["miou"] <= 1.0
    assert [c["name"] for c in r["per_class"]] == CAMVID_NAMES
    assert cv2.imread(str(out / "confusion.png")) is not None


def test_cli_default_output_goes_under_runs_and_is_named(tmp_path, camvid_model):
    """Run from a working folder with no --out: the report lands in runs/eval-<model>-<split>/
    (runs/ is in .gitignore), the command says so, and nothing else appears in the folder;
    --out still wins."""
    import os
    import subprocess
    import sys
    root = _camvid_like(tmp_path, camvid_model, frames=2)
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "jetseg.cli", "eval", "--model", camvid_model, "--dataset",
           str(root), "--no-progress"]
    r = subprocess.run(cmd, cwd=str(work), env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(str(work))) == ["runs"]
    out = work / "runs" / "eval-tiny11-val"
    assert json.loads((out / "eval.json").read_text())["dataset"]["samples"] == 2
    wrote = [l for l in r.stdout.splitlines() if l.startswith("wrote ")]
    assert wrote == ["wrote {0}/eval.json, {0}/iou.png, {0}/confusion.png".format(
        os.path.join("runs", "eval-tiny11-val"))]
    r = subprocess.run(cmd + ["--out", "mine"], cwd=str(work), env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and (work / "mine" / "eval.json").is_file(), r.stderr
    assert "wrote mine/eval.json" in r.stdout
    assert "--visualize" not in subprocess.run(cmd[:4] + ["--help"], env=env, text=True,
                                              capture_output=True).stdout
