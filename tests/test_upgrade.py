"""jetseg_export.upgrade: an older export's direct ArgMax -> uint8 cast (which TensorRT 8.5+
cannot build) routed through float, with identical outputs; the shipped models pass every
TensorRT target's parser rules."""
import numpy as np
import onnx
import pytest

from jetseg_export.compose import compose
from jetseg_export.targets import check_target
from jetseg_export.upgrade import main as upgrade_main
from tests.helpers.common import COLORS5, NAMES5, ROOT, rng_frame
from tests.helpers.tinymodels import TinyNet

ort = pytest.importorskip("onnxruntime")


def run(path, frame):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: frame[None]})


def test_old_export_is_upgraded_with_identical_outputs(tmp_path, capsys):
    old = tmp_path / "old.onnx"
    onnx.save(compose(TinyNet(width=64, height=48).onnx(), NAMES5, COLORS5, classes_via=None),
              str(old))
    with pytest.raises(Exception, match="Cast"):
        check_target(onnx.load(str(old)), "trt8.5")         # what TensorRT 8.5 refuses
    new = tmp_path / "new.onnx"
    assert upgrade_main([str(old), "-o", str(new), "--target", "trt8.5"]) == 0
    assert "1 class-map cast(s) routed through float" in capsys.readouterr().out
    for target in ("trt8.5", "trt8.6", "trt10", "trt11"):
        check_target(onnx.load(str(new)), target)
    frame = rng_frame(64, 48)
    for a, b in zip(run(old, frame), run(new, frame)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["camvid.onnx", "camvid.int8.onnx", "camvid-demo.onnx"])
@pytest.mark.parametrize("target", ["trt8.5", "trt8.6", "trt10", "trt11"])
def test_shipped_models_pass_every_tensorrt_targets_rules(name, target):
    check_target(onnx.load(str(ROOT / "engines" / name)), target)


def test_missing_model_is_one_line(tmp_path, capsys):
    assert upgrade_main([str(tmp_path / "none.onnx")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
