"""``jetseg segment`` as a user runs it: real files in, real files out, clear errors."""
import os
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.helpers.common import COLORS5, NAMES5, ROOT, count_frames, rng_frame, run_cli, write_video
from jetseg import Segmenter
from jetseg_export.compose import compose
from tests.helpers.tinymodels import TinyNet


@pytest.fixture
def model(tmp_path):
    net = TinyNet(num_classes=5, width=64, height=48, down=4)
    path = tmp_path / "net.onnx"
    onnx.save(compose(net.onnx(), NAMES5, COLORS5, scores=True), str(path))
    return str(path)


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(3):
        cv2.imwrite(str(d / "f{}.jpg".format(i)), rng_frame(80, 60, seed=i))
    (d / "notes.txt").write_text("not an image, and not picked up")
    return d






def _leftovers(d):
    return [f for f in os.listdir(str(d)) if ".part" in f]


def test_single_image_overlay_and_stats(model, images, tmp_path):
    out = tmp_path / "out.png"
    r = run_cli("segment", "--model", model, images / "f0.jpg", out, "--stats")
    assert r.returncode == 0, r.stderr
    img = cv2.imread(str(out))
    assert img.shape == (60, 80, 3)
    expected = Segmenter(model).process(cv2.imread(str(images / "f0.jpg")))
    assert np.array_equal(img, expected.overlay())
    line = [l for l in r.stdout.splitlines() if l.startswith(str(images / "f0.jpg"))][0]
    fr = expected.class_fractions()
    top = max(fr, key=fr.get)
    assert "{} {:.1f}%".format(top, 100 * fr[top]) in line


def test_folder_to_folder_with_composite_legend(model, images, tmp_path):
    outdir = tmp_path / "outdir"
    legend = tmp_path / "legend.png"
    r = run_cli("segment", "--model", model, "--visualize", "overlay,mask", "--alpha", "200",
                "--filter-mode", "point", "--legend", legend, images, str(outdir) + "/")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(outdir)) == ["f0.jpg", "f1.jpg", "f2.jpg"]
    assert cv2.imread(str(outdir / "f1.jpg")).shape == (60, 120, 3)     # W + W/2
    assert cv2.imread(str(legend)).shape[1] > 100
    assert "3 frame(s)" in r.stdout


def test_segment_and_camera_share_legend_and_stats(model, images, tmp_path):
    """One loop, one behaviour: the same input gives the same legend (every class, with its
    share over the run) and the same --stats lines from both commands."""
    runs = {}
    for cmd in (["-m", "jetseg.cli", "segment", "--model"], ["-m", "jetseg.cli.camera",
                                                              "--headless", "--engine"]):
        legend = tmp_path / "legend_{}.png".format(len(runs))
        r = subprocess.run([sys.executable] + cmd + [model, str(images), "--stats", "--legend",
                                                     str(legend)],
                           capture_output=True, text=True, cwd=str(ROOT), timeout=120)
        assert r.returncode == 0, r.stderr
        lines = [m.groups() for m in re.finditer(r"^(\S+)  frame +(\d+) +[\d.]+ fps  latency "
                                                 r"p50 +[\d.]+ ms  (.+)$", r.stdout, re.M)]
        runs[cmd[1]] = (cv2.imread(str(legend)), lines, r.stdout)
    (leg_a, lines_a, out_a), (leg_b, lines_b, out_b) = runs.values()
    assert np.array_equal(leg_a, leg_b) and leg_a.shape[0] >= 5 * 20    # all five classes
    assert [l[:2] for l in lines_a] == [(str(images / "f{}.jpg".format(i)), str(i))
                                        for i in range(3)]
    assert lines_a == lines_b
    seg = Segmenter(model)
    counts = sum(seg.process(cv2.imread(str(images / f))).class_counts()
                 for f in ("f0.jpg", "f1.jpg", "f2.jpg"))
    top = int(np.argmax(counts))
    share = "{} {:.1f}%".format(NAMES5[top], 100.0 * counts[top] / counts.sum())
    for out in (out_a, out_b):
        assert "classes: " + share in out


def test_quoted_glob_to_pattern(model, images, tmp_path):
    r = run_cli("segment", "--model", model, str(images / "f[12].jpg"),
                tmp_path / "o_%03d.png", "--visualize", "mask")
    assert r.returncode == 0, r.stderr
    assert sorted(f for f in os.listdir(tmp_path) if f.startswith("o_")) == ["o_000.png",
                                                                              "o_001.png"]
    seg = Segmenter(model)
    res = seg.process(cv2.imread(str(images / "f2.jpg")))
    assert np.array_equal(cv2.imread(str(tmp_path / "o_001.png")), res.mask())


def test_class_id_pngs_equal_the_api(model, images, tmp_path):
    r = run_cli("segment", "--model", model, "--visualize", "classes", "--filter-mode",
                "smooth", images, tmp_path / "classmaps")
    assert r.returncode == 0, r.stderr
    got = cv2.imread(str(tmp_path / "classmaps" / "f0.png"), cv2.IMREAD_UNCHANGED)
    res = Segmenter(model, filter_mode="smooth").process(cv2.imread(str(images / "f0.jpg")))
    assert got.dtype == np.uint8 and got.shape == (60, 80)
    assert np.array_equal(got, res.classes)


def test_video_in_video_out_keeps_every_frame(model, tmp_path):
    src = write_video(tmp_path / "in.avi", frames=12)
    for out in ("out.mp4", "out.avi"):
        r = run_cli("segment", "--model", model, src, tmp_path / out)
        assert r.returncode == 0, r.stderr
        assert count_frames(tmp_path / out) == 12
    assert not _leftovers(tmp_path)


def test_plain_model_with_flags(tmp_path, labels_files):
    net = TinyNet(num_classes=5, width=32, height=24, down=4, input_name="input_0",
                  output_name="output_0")
    path = net.save(tmp_path / "fcn.onnx")
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), rng_frame(32, 24))
    r = run_cli("segment", "--model", path, "--labels", labels_files[0], "--colors",
                labels_files[1], "--input-blob", "input_0", "--output-blob", "output_0",
                "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25", img, tmp_path / "o.png",
                "--stats")
    assert r.returncode == 0, r.stderr
    assert any(n in r.stdout for n in NAMES5)


def test_info_prints_the_model_facts(model):
    r = run_cli("info", model)
    assert r.returncode == 0, r.stderr
    assert "sky, road, tree, car, person" in r.stdout and "argmax" in r.stdout


# ---- bad input: one line on stderr naming the file, exit 2, no traceback ---------------
def _bad(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("jetseg: error: ") and "fix:" in last, err
    for n in needles:
        assert str(n) in last, (n, last)


def test_missing_model(images, tmp_path):
    _bad(run_cli("segment", "--model", tmp_path / "nope.onnx", images / "f0.jpg"),
         tmp_path / "nope.onnx", "not found")


def test_truncated_and_corrupt_model(model, images, tmp_path):
    data = open(model, "rb").read()
    trunc = tmp_path / "trunc.onnx"
    trunc.write_bytes(data[:len(data) // 3])
    _bad(run_cli("segment", "--model", trunc, images / "f0.jpg"), trunc, "cannot load model")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01garbage" * 50)
    _bad(run_cli("segment", "--model", junk, images / "f0.jpg"), junk)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    _bad(run_cli("segment", "--model", empty, images / "f0.jpg"), empty, "empty")


def test_classifier_is_not_a_segmentation_model(images, tmp_path):
    g = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
         helper.make_node("Flatten", ["p"], ["logits"])], "cls",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = tmp_path / "classifier.onnx"
    onnx.save(m, str(path))
    _bad(run_cli("segment", "--model", path, images / "f0.jpg"), path, "segmentation")


def test_label_and_colour_count_mismatch(tmp_path, images):
    path = TinyNet(num_classes=3).save(tmp_path / "m.onnx")
    labels = tmp_path / "classes.txt"
    labels.write_text("a\nb\nc\nd\n")
    _bad(run_cli("segment", "--model", path, "--labels", labels, images / "f0.jpg"),
         labels, "4 classes but the model outputs 3")
    colors = tmp_path / "colors.txt"
    colors.write_text("1 2 3\n" * 5)
    _bad(run_cli("segment", "--model", path, "--colors", colors, images / "f0.jpg"), colors)


def test_unreadable_and_non_image_inputs(model, tmp_path):
    fake = tmp_path / "photo.jpg"
    fake.write_text("this is text")
    _bad(run_cli("segment", "--model", model, fake, tmp_path / "o.jpg"), fake, "not a readable")
    _bad(run_cli("segment", "--model", model, tmp_path / "missing.jpg"), "missing.jpg")
    half = tmp_path / "half.png"
    ok, buf = cv2.imencode(".png", rng_frame(64, 48))
    half.write_bytes(buf.tobytes()[:200])
    _bad(run_cli("segment", "--model", model, half, tmp_path / "o.png"), half)
    vid = tmp_path / "clip.mp4"
    vid.write_bytes(b"not a video at all")
    _bad(run_cli("segment", "--model", model, vid, tmp_path / "o.mp4"), vid)
    assert not (tmp_path / "o.jpg").exists() and not (tmp_path / "o.mp4").exists()
    assert not _leftovers(tmp_path)


def test_unwritable_output(model, images, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    _bad(run_cli("segment", "--model", model, images / "f0.jpg", blocker / "o.jpg"), "o.jpg")
    _bad(run_cli("segment", "--model", model, images, tmp_path / "single.jpg"), "single.jpg",
         "folder")
    _bad(run_cli("segment", "--model", model, "--visualize", "classes", images / "f0.jpg",
                 tmp_path / "c.jpg"), "c.jpg", ".png")


def test_debug_shows_the_traceback(images, tmp_path):
    r = run_cli("segment", "--debug", "--model", tmp_path / "nope.onnx", images / "f0.jpg")
    assert r.returncode != 0 and "Traceback" in r.stderr and "JetsegError" in r.stderr


def test_ctrl_c_leaves_a_playablewrite_video(tmp_path):
    # a bigger net on bigger frames so the run lasts long enough to be interrupted
    net = TinyNet(num_classes=5, width=320, height=240, down=4, hidden=32)
    model = tmp_path / "slow.onnx"
    onnx.save(compose(net.onnx(), NAMES5, COLORS5), str(model))
    src = write_video(tmp_path / "long.avi", frames=400, size=(320, 240))
    out = tmp_path / "out.avi"
    p = subprocess.Popen([sys.executable, "-m", "jetseg.cli", "segment", "--model", str(model),
                          src, str(out)], cwd=str(ROOT), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60         # recorded at its own path from the first frame on
    while time.time() < deadline and not (out.exists() and out.stat().st_size > 0):
        time.sleep(0.05)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    n = count_frames(out)
    assert 0 < n < 400
    assert not _leftovers(tmp_path)
