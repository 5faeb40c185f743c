"""``jetseg info`` says what each figure in a model file means, and no metadata value floods
the terminal; model facts that contradict the graph are refused with one line."""
import json

import onnx
import pytest

from tests.helpers.common import COLORS5, NAMES5, ROOT, rng_frame, run_cli
from tests.helpers.tinymodels import TinyNet
from jetseg import JetsegError, Segmenter
from jetseg_export.compose import compose


def _lines(stdout):
    """{label: text} of info's 'label: text' lines."""
    out = {}
    for line in stdout.splitlines():
        label, _, text = line.partition(": ")
        out[label.strip()] = text.strip()
    return out


def _model(tmp_path, name="net.onnx", scores=True, **meta):
    """A tiny 5-class jetseg model (64x48, uint8 class map) with metadata values replaced."""
    m = compose(TinyNet(num_classes=5, width=64, height=48, down=4).onnx(), NAMES5, COLORS5,
                scores=scores)
    props = dict((p.key, p.value) for p in m.metadata_props)
    for k, v in meta.items():
        props["jetseg." + k] = v if isinstance(v, str) and k == "note" else json.dumps(v)
    del m.metadata_props[:]
    onnx.helper.set_model_props(m, props)
    path = tmp_path / name
    onnx.save(m, str(path))
    return str(path)


def test_shipped_int8_model_labels_each_miou_figure():
    r = run_cli("info", ROOT / "engines" / "camvid.int8.onnx")
    assert r.returncode == 0, r.stderr
    got = _lines(r.stdout)
    assert got["dataset"] == "camvid (367 images)"                # not "camvid camvid"
    assert got["mIoU"] == ("60.41 % of this file (export parity check on 101 frame(s) from "
                           "../shared/datasets/camvid/val at 320x240)")
    assert got["val mIoU"].startswith("61.15 % of the training checkpoint it was exported "
                                      "from (PyTorch, FP32")
    assert got["mIoU is"] == "mean IoU over classes present in the ground truth"
    assert got["parity"].startswith("pixels agreeing with PyTorch: fp32 100.00 %, int8 98.61 %")
    assert "miou" not in got and "val_miou" not in got and "miou_definition" not in got


def test_an_miou_without_its_data_says_so(tmp_path):
    r = run_cli("info", _model(tmp_path, miou=0.5))
    assert r.returncode == 0, r.stderr
    assert _lines(r.stdout)["mIoU"] == ("50.00 % of this file (what it was measured on is "
                                        "not recorded)")
    r = run_cli("info", _model(tmp_path, miou=0.5, miou_split="val of mine"))
    assert _lines(r.stdout)["mIoU"] == "50.00 % of this file (measured on val of mine)"


def test_a_huge_metadata_value_is_cut_and_counted(tmp_path):
    big = "x" * 5000000
    r = run_cli("info", _model(tmp_path, note=big))
    assert r.returncode == 0, r.stderr
    assert _lines(r.stdout)["note"] == "x" * 200 + "... (5000000 bytes)"
    assert len(r.stdout) < 4000


def test_class_names_that_contradict_the_graph_are_one_line_errors(tmp_path):
    many = ["c{}".format(i) for i in range(2000000)]
    path = _model(tmp_path, "many.onnx", scores=False, classes=many)    # as camvid.onnx
    with pytest.raises(JetsegError, match="jetseg.colors has 5 colours for the 2000000 classes"):
        Segmenter(path)
    r = run_cli("segment", "--model", path, ROOT / "samples" / "0016E5_07959.jpg",
                tmp_path / "o.jpg")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "jetseg.colors" in r.stderr and "fix: re-export" in r.stderr
    r = run_cli("info", path)          # info still shows the facts (capped), then the error
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "jetseg.colors" in r.stderr
    assert _lines(r.stdout)["classes"].endswith("... ({} bytes)".format(
        len(", ".join(many))))
    names = ["c{}".format(i) for i in range(300)]
    colors = [[i % 256, 0, 0] for i in range(300)]
    with pytest.raises(JetsegError, match=r"jetseg.classes lists 300 classes but output "
                                          r"'output_0' has 5"):
        Segmenter(_model(tmp_path, "scores.onnx", classes=names, colors=colors))
    with pytest.raises(JetsegError, match=r"jetseg.classes lists 300 classes but the graph's "
                                          r"class map 'classes' is uint8"):
        Segmenter(_model(tmp_path, "nosc.onnx", scores=False, classes=names, colors=colors))


def test_input_size_that_contradicts_the_graph_is_refused(tmp_path):
    inp = {"name": "image", "layout": "NHWC", "dtype": "uint8", "width": 640, "height": 480,
           "channels": "BGR"}
    with pytest.raises(JetsegError) as e:
        Segmenter(_model(tmp_path, input=inp))
    assert "metadata jetseg.input says 640x480 but the graph's input 'image' is 64x48" in \
        str(e.value)
    ok = Segmenter(_model(tmp_path, "ok.onnx"))     # the untouched model still runs
    assert ok.process(rng_frame(64, 48)).classes.shape == (48, 64)
