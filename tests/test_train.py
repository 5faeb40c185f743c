"""jetseg train: a tiny CamVid-format dataset in, checkpoints, log, curves, resume, DDP out;
and the checkpoint exports with no extra flags."""
import csv
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.helpers.common import ROOT, free_port  # noqa: E402
from jetseg import Segmenter  # noqa: E402
from jetseg.eval import metrics  # noqa: E402
from jetseg_export.train import augment, class_weights, main  # noqa: E402


@pytest.fixture(scope="module")
def tiny_camvid(tmp_path_factory):
    """12 train / 4 val frames: sky (top, blue-grey), road (bottom, purple), void stripe."""
    root = tmp_path_factory.mktemp("camvid")
    rng = np.random.RandomState(0)
    for split, n in (("train", 12), ("val", 4)):
        os.makedirs(str(root / split))
        os.makedirs(str(root / (split + "annot")))
        for i in range(n):
            h, w = 48, 64
            cut = rng.randint(16, 32)
            lab = np.full((h, w), 3, np.uint8)          # Road
            lab[:cut] = 0                                # Sky
            lab[cut:cut + 2] = 11                        # void
            img = np.zeros((h, w, 3), np.uint8)
            img[lab == 0] = (200, 160, 120)
            img[lab != 0] = (120, 60, 120)
            img = np.clip(img + rng.randint(-15, 15, img.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / split / "f{:02d}.png".format(i)), img)
            cv2.imwrite(str(root / (split + "annot") / "f{:02d}.png".format(i)), lab)
    return root


def _train(root, out, epochs, *extra):
    return main(["--arch", "lraspp-mobilenet", "--dataset", str(root), "--format", "camvid",
                 "--input-size", "64x48", "--epochs", str(epochs), "--batch-size", "4",
                 "--workers", "0", "--threads", "1", "--quiet", "-o", str(out)] + list(extra))


def _log(out):
    with open(str(out / "log.csv")) as f:
        return list(csv.DictReader(f))


def test_train_resume_and_export_without_flags(tiny_camvid, tmp_path):
    out = tmp_path / "run"
    assert _train(tiny_camvid, out, 2) == 0
    assert sorted(os.listdir(str(out))) == ["best.pth", "curves.png", "last.pth", "log.csv",
                                            "train.json"]
    rows = _log(out)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(0 <= float(r["miou"]) <= 1 and float(r["loss"]) > 0 for r in rows)
    assert cv2.imread(str(out / "curves.png")).shape == (360, 720, 3)
    ck = torch.load(str(out / "last.pth"), weights_only=True)
    assert ck["arch"] == "lraspp-mobilenet" and ck["num_classes"] == 11
    assert ck["classes"][0] == "Sky" and ck["input_size"] == [64, 48] and ck["epoch"] == 1
    # resume continues where it stopped, same log
    assert _train(tiny_camvid, out, 3, "--resume") == 0
    assert [int(r["epoch"]) for r in _log(out)] == [0, 1, 2]
    assert float(_log(out)[0]["loss"]) == float(rows[0]["loss"])
    # export needs no flags: arch, classes, colours, size, mean/std come from the checkpoint
    onnx_path = tmp_path / "m.onnx"
    from jetseg_export.cli import main as export_main
    assert export_main(["--checkpoint", str(out / "best.pth"), "-o", str(onnx_path),
                        "--quiet"]) == 0
    seg = Segmenter(str(onnx_path))
    assert seg.classes[:2] == ["Sky", "Building"] and seg.net_size == (64, 48)
    assert seg.info.extra["arch"] == "lraspp-mobilenet"
    best = torch.load(str(out / "best.pth"), weights_only=True)
    assert abs(seg.info.extra["val_miou"] - best["miou"]) < 1e-3


def test_same_seed_same_run(tiny_camvid, tmp_path):
    for name in ("a", "b"):
        assert _train(tiny_camvid, tmp_path / name, 1, "--seed", "3") == 0
    assert _log(tmp_path / "a")[0]["loss"] == _log(tmp_path / "b")[0]["loss"]




def test_torchrun_two_cpu_processes(tiny_camvid, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                        "-m", "jetseg_export.train", "--arch",
                        "lraspp-mobilenet", "--dataset", str(tiny_camvid), "--input-size",
                        "64x48", "--epochs", "1", "--batch-size", "2", "--workers", "0",
                        "--device", "cpu", "-o", str(out)], capture_output=True, text=True,
                       env=env, cwd=str(ROOT), timeout=240)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert len(_log(out)) == 1 and (out / "last.pth").exists()
    assert r.stdout.count("epoch   1/1") == 1                 # only rank 0 reports


def test_augment_keeps_labels_aligned():
    rng = np.random.RandomState(1)
    img = np.zeros((40, 60, 3), np.uint8)
    lab = np.zeros((40, 60), np.uint8)
    img[:, 30:] = 255
    lab[:, 30:] = 1
    for _ in range(20):
        a, b = augment(img, lab, (32, 24), rng, 11, jitter=0.0)
        assert a.shape == (24, 32, 3) and b.shape == (24, 32)
        v = a[..., 0]
        clear = (b != 11) & ((v < 64) | (v > 191))       # not a blended boundary pixel
        assert np.array_equal(v[clear] > 127, b[clear] == 1)


def test_metrics_and_weights():
    pred = np.array([[0, 1], [1, 1]])
    lab = np.array([[0, 1], [0, 9]])
    conf = metrics.confusion_matrix(lab, pred, 2, ignore_index=9)    # what train validates with
    assert conf.tolist() == [[1, 1], [0, 1]]
    ious, miou = metrics.per_class_iou(conf), metrics.miou(conf)
    assert np.allclose(ious, [0.5, 0.5]) and miou == 0.5

    class DS(object):
        ignore_index = 9

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return None, np.array([0, 0, 0, 1, 9])
    w = class_weights(DS(), 2, "median")
    assert w[1] > w[0]


def test_bad_samples_fail_early_or_are_skipped(tiny_camvid, tmp_path, capsys):
    import shutil
    root = tmp_path / "broken"
    shutil.copytree(str(tiny_camvid), str(root))
    big = np.zeros((10, 10), np.uint8)
    cv2.imwrite(str(root / "trainannot" / "f03.png"), big)          # label of another size
    os.remove(str(root / "trainannot" / "f05.png"))                 # image without label
    assert _train(root, tmp_path / "r1", 1) == 2
    err = capsys.readouterr().err
    assert "jetseg train: error:" in err and ("f03" in err or "f05" in err), err
    assert "--skip-bad" in err
    assert _train(root, tmp_path / "r2", 1, "--skip-bad") == 0
