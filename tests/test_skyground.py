"""The shipped sky/ground model (engines/skyground.onnx): trained on CamVid's labels turned
into sky and ground, it finds the banked horizon on NVIDIA's real FPV frames
(samples/aerial) within the tolerance of lines traced by eye, the file alone says what it is
and what it scored on a sequence it never saw, and jetseg-camera emits that horizon."""
import json
import re
import subprocess
import sys

import cv2
import pytest

from tests.helpers.common import ROOT
from jetseg import Segmenter, autopilot

MODEL = ROOT / "engines" / "skyground.onnx"
AERIAL = ROOT / "samples" / "aerial"
TRACED = json.loads((AERIAL / "horizon.json").read_text())


def test_the_file_alone_is_enough_and_states_its_held_out_score():
    seg = Segmenter(str(MODEL))
    assert seg.classes == ["sky", "ground"] and seg.net_size == (320, 240)
    assert seg.info.extra["arch"] == "fast-scnn" and seg.info.graph["argmax"]
    stated = re.search(r"skyground\.onnx.*?\*\*(\d+\.\d) %\*\*",
                       (ROOT / "engines" / "README.md").read_text(), re.S)
    assert stated, "engines/README.md states the held-out mIoU in bold"
    assert abs(seg.info.extra["val_miou"] * 100 - float(stated.group(1))) < 0.05


@pytest.mark.parametrize("name", sorted(TRACED["frames"]))
def test_horizon_on_real_fpv_frames_matches_the_traced_line(name):
    seg = Segmenter(str(MODEL))
    frame = cv2.imread(str(AERIAL / name))
    res = seg.process(frame)
    h = autopilot.estimate_horizon(res, ["sky"])
    want = TRACED["frames"][name]["roll_deg"]
    assert abs(h.roll_deg - want) < TRACED["tolerance_deg"], (h, want)
    assert h.confidence >= 0.5 and not h.inverted, h
    fr = res.class_fractions()
    assert 0.2 < fr["sky"] < 0.8, fr                  # both halves of a banked frame


def test_camera_emits_the_fpv_horizon(tmp_path):
    out = tmp_path / "rec.jsonl"
    r = subprocess.run([sys.executable, "-m", "jetseg.cli.camera", "--engine", str(MODEL),
                        str(AERIAL / "drone_0428.jpg"), "--headless", "--sky-classes", "sky",
                        "--free-classes", "ground", "--emit", "jsonl:" + str(out)],
                       capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert r.returncode == 0, r.stderr
    rec = json.loads(out.read_text().splitlines()[0])
    want = TRACED["frames"]["drone_0428.jpg"]["roll_deg"]
    assert rec["horizon"]["measured"] and abs(rec["horizon"]["roll_deg"] - want) < \
        TRACED["tolerance_deg"], rec["horizon"]
