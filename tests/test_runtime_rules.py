"""The design's hard rules for the runtime (jetseg/): Python 3.6, no torch, numpy only."""
import ast
import shutil
import subprocess
import sys

import pytest

from tests.helpers.common import ROOT


def test_runtime_needs_nothing_newer_than_python_36():
    vermin = shutil.which("vermin")
    if vermin is None:
        pytest.skip("vermin is not installed (pip install 'jetseg[dev]')")
    r = subprocess.run([vermin, "-q", "--no-tips", "--violations", "-t=3.6-", "jetseg"],
                       cwd=str(ROOT), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_vermin_would_catch_a_violation(tmp_path):
    """Guard against a silently passing check: vermin flags 3.8 syntax."""
    vermin = shutil.which("vermin")
    if vermin is None:
        pytest.skip("vermin is not installed")
    (tmp_path / "m.py").write_text("if (n := 3):\n    pass\n")
    r = subprocess.run([vermin, "-q", "--no-tips", "--violations", "-t=3.6-", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode != 0


PROBE = r"""
import sys, importlib.abc
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is forbidden in the runtime")
sys.meta_path.insert(0, NoTorch())
import numpy as np, jetseg
from jetseg.cli import main
seg = jetseg.Segmenter(sys.argv[1], filter_mode="smooth")
res = seg.process(np.zeros((48, 64, 3), np.uint8))
res.overlay(); res.mask(); res.class_fractions(); res.confidence
assert main(["segment", "--model", sys.argv[1], "--quiet", sys.argv[2]]) == 0
bad = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "torchvision")))
print("torch modules:", bad)
sys.exit(1 if bad else 0)
"""


def test_import_and_process_never_import_torch(tmp_path):
    import cv2
    import numpy as np
    import onnx

    from tests.helpers.common import COLORS5, NAMES5
    from jetseg_export.compose import compose
    from tests.helpers.tinymodels import TinyNet
    model = tmp_path / "m.onnx"
    onnx.save(compose(TinyNet(width=64, height=48).onnx(), NAMES5, COLORS5, scores=True,
                      confidence=True), str(model))
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.zeros((48, 64, 3), np.uint8))
    r = subprocess.run([sys.executable, "-c", PROBE, str(model), str(img)], capture_output=True,
                       text=True, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "torch modules: []" in r.stdout


def test_runtime_requires_numpy_only_and_python_36():
    tree = ast.parse((ROOT / "setup.py").read_text())
    kw = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup":
            kw = dict((k.arg, k.value) for k in node.keywords)
    assert [ast.literal_eval(e) for e in kw["install_requires"].elts] == ["numpy>=1.13"]
    assert ast.literal_eval(kw["python_requires"]) == ">=3.6"
    extras = ast.literal_eval(kw["extras_require"])
    assert {"desktop", "export", "dev"} <= set(extras)
    # pip's OpenCV only ever comes from an extra, never for a plain (Jetson) install
    assert not any("opencv" in r for r in ast.literal_eval(kw["install_requires"]))
