"""The shipped default model (engines/camvid.onnx, INT8 and FP16 variants): facts in the file,
and the CamVid val mIoU that README.md and engines/README.md state, reproduced from the file."""
import re

import cv2
import numpy as np
import pytest

from tests.helpers.common import ROOT
from jetseg import Segmenter

FP32 = ROOT / "engines" / "camvid.onnx"
INT8 = ROOT / "engines" / "camvid.int8.onnx"
FP16 = ROOT / "engines" / "camvid.fp16.onnx"
CAMVID_NAMES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                "Car", "Pedestrian", "Bicyclist"]


def _stated(pattern):
    m = re.search(pattern, (ROOT / "engines" / "README.md").read_text())
    assert m, pattern
    return float(m.group(1)) / 100.0


def test_the_file_alone_is_enough():
    seg = Segmenter(str(FP32))
    assert seg.classes == CAMVID_NAMES and seg.net_size == (320, 240)
    assert seg.info.extra["arch"] == "lraspp-mobilenet" and seg.info.graph["argmax"]
    assert abs(seg.info.extra["val_miou"] - 0.611) < 0.002
    int8 = Segmenter(str(INT8))
    assert int8.info.precision == "int8" and int8.classes == CAMVID_NAMES
    frame = cv2.imread(str(ROOT / "samples" / "0016E5_08101.jpg"))
    res = seg.process(frame)
    fr = res.class_fractions()
    assert res.classes.shape == frame.shape[:2]
    assert fr["Road"] > 0.15 and fr["Sky"] > 0.02 and fr["Pedestrian"] > 0.002
    agree = (int8.process(frame).classes == res.classes).mean()
    assert agree > 0.95


@pytest.mark.parametrize("path, stated", [
    (FP32, r"`camvid.onnx` \| [^|]+\| [^|]+\| \*\*([\d.]+) %\*\*"),
    (INT8, r"`camvid.int8.onnx` \| [^|]+\| [^|]+\| \*\*([\d.]+) %\*\*"),
    (FP16, r"`camvid.fp16.onnx` \| [^|]+\| [^|]+\| \*\*([\d.]+) %\*\*"),
])
def test_val_miou_as_stated(camvid, path, stated):
    from jetseg.eval.datasets import open_dataset
    from jetseg.eval.evaluate import evaluate
    result = evaluate(Segmenter(str(path)), open_dataset(str(camvid), "camvid", "val"),
                      progress=False)
    assert len(result.per_class_iou()) == 11
    assert abs(result.miou - _stated(stated)) < 0.0005, result.miou
    # and independently of jetseg.eval: one confusion matrix in plain numpy
    seg = Segmenter(str(path))
    conf = np.zeros((11, 11), np.int64)
    for img in sorted((camvid / "val").glob("*.jpg"))[::10]:
        lab = cv2.imread(str(camvid / "valannot" / (img.stem + ".png")), cv2.IMREAD_UNCHANGED)
        pred = seg.process(cv2.imread(str(img))).classes
        keep = lab != 11
        conf += np.bincount(lab[keep] * 11 + pred[keep], minlength=121).reshape(11, 11)
    iou = np.diag(conf) / (conf.sum(0) + conf.sum(1) - np.diag(conf)).clip(1)
    assert abs(iou.mean() - result.miou) < 0.05        # a tenth of the frames: close, not equal
