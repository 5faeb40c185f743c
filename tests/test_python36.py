"""The runtime on a real Python 3.6 with numpy 1.19 (JetPack 4.6 on a Jetson Nano).

vermin checks the syntax; this runs the code. It needs a Python 3.6 interpreter (pyenv's,
or python3.6 on PATH) and PyPI for numpy 1.19.5, OpenCV 4.6 and ONNX Runtime 1.10 (the last
with cp36 wheels); it skips with the reason when either is missing. The venv is cached
between runs in the system temp folder.
"""
import glob
import os
import shutil
import subprocess
import tempfile

import numpy as np
import onnx
import pytest

from tests.helpers.common import COLORS5, NAMES5, ROOT, rng_frame
from jetseg import Segmenter
from jetseg_export.compose import compose
from tests.helpers.tinymodels import TinyNet

PACKAGES = ["numpy==1.19.5", "onnxruntime==1.10.0", "opencv-python-headless==4.6.0.66"]


def _python36():
    pyenv = os.path.expanduser(os.environ.get("PYENV_ROOT", "~/.pyenv"))
    hits = sorted(glob.glob(os.path.join(pyenv, "versions", "3.6.*", "bin", "python3.6")))
    for exe in hits[::-1] + [shutil.which("python3.6")]:
        if exe and subprocess.run([exe, "-c", "import sys; assert sys.version_info[:2] == "
                                   "(3, 6)"], capture_output=True).returncode == 0:
            return exe
    return None


@pytest.fixture(scope="module")
def py36():
    exe = _python36()
    if exe is None:
        pytest.skip("no Python 3.6 interpreter here (pyenv install 3.6.15 to run this)")
    venv = os.path.join(tempfile.gettempdir(), "jetseg-py36-venv")
    py = os.path.join(venv, "bin", "python")
    marker = os.path.join(venv, "jetseg-ready-" + "-".join(PACKAGES).replace("=", ""))
    if not os.path.exists(marker):
        shutil.rmtree(venv, ignore_errors=True)
        steps = [[exe, "-m", "venv", venv],
                 [py, "-m", "pip", "install", "-q", "pip==21.3.1"],
                 [py, "-m", "pip", "install", "-q"] + PACKAGES]
        for cmd in steps:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                pytest.skip("could not set up the Python 3.6 venv ({}): {}".format(
                    " ".join(cmd[2:5]), (r.stderr or r.stdout).strip().splitlines()[-1:]))
        open(marker, "w").close()
    return py


PROBE = r"""
import sys, json, numpy as np, jetseg, cv2
from jetseg.cli import main
assert sys.version_info[:2] == (3, 6), sys.version
model, plain, frame_path, out_dir = sys.argv[1:5]
frame = np.load(frame_path)
res = {}
for mode in ("point", "linear", "smooth"):
    r = jetseg.Segmenter(model, filter_mode=mode).process(frame)
    res[mode] = {"classes": r.classes.tolist(), "overlay": r.overlay().tolist(),
                 "mask": r.mask().tolist()}
r = jetseg.Segmenter(plain, filter_mode="smooth").process(frame)
res["plain"] = r.classes.tolist()
assert main(["segment", "--model", model, "--quiet", "--visualize", "overlay,mask",
             frame_path.replace(".npy", ".png"), out_dir + "/seg.png"]) == 0
from jetseg import autopilot
h = autopilot.estimate_horizon(np.vstack([np.zeros((20, 64), np.uint8),
                                          np.ones((28, 64), np.uint8)]), sky_classes=[0])
res["horizon"] = [h.roll_deg, h.pitch]
with jetseg.stream(frame_path.replace(".npy", ".png"), model) as s:
    res["stream"] = [x.frame_id for x in s]
# no PyAV, no GStreamer here: OpenCV's own writer, with a warning saying what to install
assert main(["segment", "--model", model, "--quiet", frame_path.replace(".npy", ".png"),
             out_dir + "/rec.mp4"]) == 0
cap = cv2.VideoCapture(out_dir + "/rec.mp4")
res["recorded"] = int(cap.read()[0])
json.dump(res, open(out_dir + "/res.json", "w"))
print("numpy", np.__version__, "cv2", cv2.__version__)
"""


def test_runtime_on_python36_numpy119(py36, tmp_path):
    import cv2
    import json
    net = TinyNet(num_classes=5, width=64, height=48, down=4)
    model = tmp_path / "m.onnx"
    m = compose(net.onnx(opset=13), NAMES5, COLORS5, scores=True, confidence=True)
    m.ir_version = 7                                  # what ONNX Runtime 1.10 reads
    onnx.save(m, str(model))
    plain = net.save(tmp_path / "plain.onnx", opset=13)
    frame = rng_frame(96, 72, seed=3)
    np.save(str(tmp_path / "f.npy"), frame)
    cv2.imwrite(str(tmp_path / "f.png"), frame)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([py36, "-c", PROBE, str(model), plain, str(tmp_path / "f.npy"),
                        str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "numpy 1.19.5" in r.stdout
    got = json.load(open(str(tmp_path / "res.json")))
    for mode in ("point", "linear", "smooth"):            # same answers as on this Python
        here = Segmenter(str(model), filter_mode=mode).process(frame)
        assert np.array_equal(np.array(got[mode]["classes"]), here.classes)
        assert np.abs(np.array(got[mode]["overlay"]) - here.overlay()).max() <= 1
        assert np.abs(np.array(got[mode]["mask"]) - here.mask()).max() <= 1
    here = Segmenter(plain, filter_mode="smooth").process(frame)
    assert (np.array(got["plain"]) == here.classes).mean() > 0.999
    assert cv2.imread(str(tmp_path / "seg.png")).shape == (72, 96 + 48, 3)
    assert got["stream"] == [0] and abs(got["horizon"][0]) < 1
    assert got["recorded"] == 1 and "jetseg[video]" in r.stderr
