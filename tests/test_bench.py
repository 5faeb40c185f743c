"""``jetseg bench`` prints its figures; the goals are reported, never asserted here."""
import re

import cv2
import numpy as np
import onnx
import pytest

from tests.helpers.common import COLORS5, NAMES5, rng_frame, run_cli, write_video
from jetseg_export.compose import compose
from tests.helpers.tinymodels import TinyNet

ROW = (r"^  ({})\s+([\d.]+)\s+([\d.]+)\.\.([\d.]+)\s+([\d.]+)\s+([\d.]+)x(.*)$")


def _model(tmp_path):
    model = tmp_path / "net.onnx"
    onnx.save(compose(TinyNet(width=64, height=48).onnx(), NAMES5, COLORS5, scores=True),
              str(model))
    return model


def _check_row(m):
    fps, lo, hi = float(m.group(2)), float(m.group(3)), float(m.group(4))
    assert lo <= fps <= hi and fps > 0
    assert abs(float(m.group(5)) - 1000.0 / fps) < 0.02 * (1000.0 / fps) + 0.01


def test_bench_prints_every_figure_with_ratios(tmp_path):
    model = _model(tmp_path)
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(4):
        cv2.imwrite(str(d / "{}.png".format(i)), rng_frame(96, 72, seed=i))
    r = run_cli("bench", "--model", model, d, "--frames", "4", "--repeats", "2", "--soak", "60")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    rows = dict((m.group(1).strip(), m) for m in re.finditer(
        r"^  (model only|full pipeline|naive loop \(numpy\+ORT\))\s+([\d.]+)\s+([\d.]+)\.\.([\d.]+)"
        r"\s+([\d.]+)\s+([\d.]+)x", out, re.M))
    assert set(rows) == {"model only", "full pipeline", "naive loop (numpy+ORT)"}, out
    for m in rows.values():
        fps, lo, hi = float(m.group(2)), float(m.group(3)), float(m.group(4))
        assert lo <= fps <= hi and fps > 0
        assert abs(float(m.group(5)) - 1000.0 / fps) < 0.02 * (1000.0 / fps) + 0.01
    assert float(rows["model only"].group(6)) == 1.0
    rec = re.search(r"^  pipeline \+ H\.264 file\s+([\d.]+)\s+[\d.]+\.\.[\d.]+\s+[\d.]+\s+"
                    r"[\d.]+x  ([\d.]+)x the pipeline without", out, re.M)
    assert rec and float(rec.group(1)) > 0 and float(rec.group(2)) > 0, out
    assert re.search(r"jetseg pipeline is [\d.]+x faster", out)
    assert re.search(r"naive loop \(torch\)\s+(skipped: .+|[\d.]+)", out)
    m = re.search(r"peak RSS ([\d.]+) MB; RSS ([\d.]+) MB after warm-up -> ([\d.]+) MB after "
                  r"(\d+) frames: ([-+][\d.]+)%", out)
    assert m and int(m.group(4)) == 60 and float(m.group(1)) > 10
    assert "file in, file out" not in out          # a folder of images: no video to write
    from jetseg.cli.bench import verdict
    assert verdict(0.897, 0.90) == "meets goal"     # printed as 0.90x: judged as printed
    assert verdict(0.894, 0.90) == "misses goal" and verdict(4.0, 3.0) == "meets goal"


def _blocks(out):
    """{backend name: {row name: match}} from the per-backend blocks of the table."""
    blocks, current = {}, None
    for line in out.splitlines():
        head = re.match(r"^  (onnxruntime|openvino|tensorrt) \(", line)
        if head:
            current = blocks.setdefault(head.group(1), {})
            continue
        m = re.match(ROW.format(r"model only|full pipeline|"
                                r"file in, file out"), line)
        if m and current is not None:
            current[m.group(1)] = m
        elif line.startswith("  baselines"):
            current = None
    return blocks


def test_bench_times_every_installed_backend_with_a_verdict_per_goal(tmp_path):
    """--backend auto: a block per installed CPU backend; a video input adds the file-in,
    file-out row; every goal has its verdict, and the memory run is off by default."""
    import importlib.util
    installed = [n for n in ("onnxruntime", "openvino") if importlib.util.find_spec(n)]
    model = _model(tmp_path)
    video = write_video(tmp_path / "clip.avi", frames=6, size=(96, 72))
    r = run_cli("bench", "--model", model, video, "--frames", "5", "--repeats", "2")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    blocks = _blocks(out)
    assert sorted(blocks) == sorted(installed), out
    for name, rows in blocks.items():
        assert sorted(rows) == ["file in, file out", "full pipeline", "model only"], out
        for row, m in rows.items():
            _check_row(m)
            if row == "model only":
                assert float(m.group(6)) == 1.0 and "(baseline)" in m.group(7)
                continue
            ratio = float(m.group(2)) / float(rows["model only"].group(2))
            assert abs(float(m.group(6)) - ratio) < 0.011
            want = "meets goal" if float(m.group(6)) >= 0.90 else "misses goal"
            assert m.group(7).split(">= 0.90x model only")[1].strip() == want, m.group(0)
    stages = re.findall(r"^    (full pipeline|pipeline \+ H\.264 file|file in, file out): ms a "
                        r"frame \(p50\) capture ([\d.]+), preprocess ([\d.]+) \(capture thread\), "
                        r"inference ([\d.]+) \(model only ([\d.]+)\), render ([\d.]+); the model "
                        r"ran (\d+)% of the time; (\d+) ms a run opening and closing source "
                        r"and outputs \(not in the fps\)$", out, re.M)
    assert len(stages) == 3 * len(installed), out          # each pipeline row, each backend
    for i, name in enumerate(blocks):                     # in the order the blocks print
        model_ms = float(blocks[name]["model only"].group(5))
        for row in stages[3 * i:3 * i + 3]:
            assert float(row[3]) > 0 and 0 < int(row[6]) <= 100 and int(row[7]) >= 0, row
            assert abs(float(row[4]) - model_ms) <= 0.051, (row, model_ms)
    naive = re.search(r"^  naive loop \(numpy\+ORT\).*jetseg pipeline is ([\d.]+)x faster "
                      r"\(goal >= 3x\)\s+(meets goal|misses goal)$", out, re.M)
    assert naive, out
    assert naive.group(2) == ("meets goal" if float(naive.group(1)) >= 3 else "misses goal")
    assert "memory" not in out and "RSS" not in out
    assert re.search(r"^  \d+ s; machine load \(1 min average\) [\d.]+ at the start", out, re.M)
    r = run_cli("bench", "--model", model, video, "--frames", "3", "--repeats", "1",
                "--backend", "onnxruntime")
    assert r.returncode == 0, r.stderr
    assert sorted(_blocks(r.stdout)) == ["onnxruntime"]
    r = run_cli("bench", "--model", model, video, "--frames", "3", "--repeats", "1",
                "--backend", "onnxruntime", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "onnxruntime (CPUExecutionProvider); inference on 1 of " in r.stdout


def test_bench_help_gives_the_defaults_and_bad_counts_are_one_line(tmp_path):
    r = run_cli("bench", "--help")
    text = " ".join(r.stdout.split())
    assert "frames per repeat (default: 30)" in text
    assert "(default: 5)" in text and "default: 0, off" in text
    r = run_cli("bench", "--model", _model(tmp_path), "--repeats", "0")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert "--repeats must be at least 1" in r.stderr


def test_render_work_counts_classes_as_the_full_resolution_map_does(tmp_path):
    """The bench's render sink counts classes at the net's resolution, weighted by how many
    frame pixels each becomes: the same counts as the class map at the frame's size."""
    from jetseg import Segmenter
    from jetseg.core import processing
    seg = Segmenter(str(_model(tmp_path)), backend="onnxruntime")
    for w, h in ((64, 48), (96, 72), (100, 37), (31, 50)):
        res = seg.process(rng_frame(w, h, seed=w))
        counts = res.class_counts()
        assert res._classes is None                 # no full-size map was made for it
        want = np.bincount(res.classes.ravel(), minlength=5)[:5]
        assert counts.tolist() == want.tolist() and counts.sum() == w * h
    low = np.random.RandomState(0).randint(0, 7, (13, 17)).astype(np.uint8)
    for w, h in ((17, 13), (40, 9), (5, 30)):
        full = processing.resize_nearest(low, w, h)
        assert processing.nearest_counts(low, w, h, 7).tolist() == \
            np.bincount(full.ravel(), minlength=7).tolist()


def test_render_work_looks_alpha_up_by_table_with_the_same_overlay():
    """The linear overlay looks each class's alpha up with OpenCV's LUT (at the net's
    resolution) instead of numpy indexing: the same float32 alphas, so the same overlay,
    byte for byte, as the indexed formula it replaced."""
    import cv2
    from jetseg.core import processing
    rs = np.random.RandomState(3)
    colors = [tuple(rs.randint(0, 256, 3)) + ((77,) if i == 2 else ()) for i in range(11)]
    pal = processing.Palette(colors, 150)
    low = cv2.resize(rs.randint(0, 11, (12, 16)).astype(np.uint8), (64, 48),
                     interpolation=cv2.INTER_NEAREST)
    frame = rng_frame(96, 72, seed=3)
    a = processing.resize_linear(pal.a[low].astype(np.float32), 96, 72)     # the old way
    old = cv2.blendLinear(frame, processing.resize_linear(pal.mask(low), 96, 72),
                          (1.0 - a).astype(np.float32), a)
    assert cv2.LUT(low, pal.lut_a).dtype == np.float32
    assert np.array_equal(cv2.LUT(low, pal.lut_a), pal.a[low].astype(np.float32))
    assert np.array_equal(pal.blend_linear(frame, low), old)
    assert len(np.unique(old.reshape(-1, 3), axis=0)) > 100        # a real blend, not a copy
