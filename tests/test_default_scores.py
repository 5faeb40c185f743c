"""The shipped default model's scores output (engines/camvid.onnx, its INT8 and FP16 files):
what smooth mode, --ignore-class, ``res.confidence`` and the bench's numpy baseline read,
fetched only when one of them asks, and the very tensor the graph's class map is made from."""
import json

import cv2
import numpy as np
import pytest

from jetseg import Segmenter
from tests.helpers.common import ROOT, run_cli

ENGINES = ROOT / "engines"
FP32, INT8, FP16 = (ENGINES / n for n in ("camvid.onnx", "camvid.int8.onnx",
                                           "camvid.fp16.onnx"))
FRAME = ROOT / "samples" / "0016E5_08101.jpg"       # a CamVid val frame, 480x360
SKY = 0


def _backends():
    names = ["onnxruntime"]
    try:
        import openvino  # noqa: F401
        names.append("openvino")
    except ImportError:
        pass
    return names


@pytest.fixture(scope="module")
def frame():
    return cv2.imread(str(FRAME))


def _edges(classes, radius):
    """Pixels within ``radius`` of a class boundary of ``classes``."""
    c = classes.astype(np.int16)
    edge = np.zeros(c.shape, np.uint8)
    edge[:, 1:] |= (c[:, 1:] != c[:, :-1])
    edge[1:, :] |= (c[1:, :] != c[:-1, :])
    k = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return cv2.dilate(edge, k).astype(bool)


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("path", [FP32, INT8, FP16], ids=["fp32", "int8", "fp16"])
def test_scores_are_there_and_the_plain_path_does_not_fetch_them(path, backend):
    seg = Segmenter(str(path), backend=backend)
    assert seg.info.outputs["scores"] == "logits"
    out = [o for o in seg.backend.outputs if o.name == "logits"][0]
    assert out.shape == [1, 11, 240, 320] and out.dtype == "float32"
    assert seg.plan.fetch(False) == ["classes"]                 # a 480x360 camera frame
    assert seg.plan.fetch(True) == ["classes", "overlay"]       # a frame at the net's size
    assert Segmenter(str(path), backend=backend, filter_mode="smooth").plan.fetch(False) == \
        ["logits"]
    assert Segmenter(str(path), backend=backend, ignore_class="Sky").plan.fetch(False) == \
        ["logits"]


@pytest.mark.parametrize("path", [FP32, INT8, FP16], ids=["fp32", "int8", "fp16"])
def test_the_plain_path_runs_the_graph_a_file_without_scores_would(path):
    """ONNX Runtime runs a graph pruned to the fetched outputs: for the class map alone it is
    node for node the one the same file without its scores output gives."""
    import onnx
    from jetseg.backends.onnx_proto import prune_outputs
    model = onnx.load(str(path))
    without = onnx.ModelProto()
    without.CopyFrom(model)
    keep = [o for o in without.graph.output if o.name != "logits"]
    del without.graph.output[:]
    without.graph.output.extend(keep)
    a = onnx.load_from_string(prune_outputs(without.SerializeToString(), ["classes"]))
    b = onnx.load_from_string(prune_outputs(str(path), ["classes"]))
    assert [o.name for o in b.graph.output] == ["classes"]
    assert list(a.graph.node) == list(b.graph.node)
    assert list(a.graph.initializer) == list(b.graph.initializer)


def test_the_class_map_is_the_argmax_of_the_scores(frame):
    """The exposed tensor is what the graph's ArgMax reads (its upsample to 320x240 is the
    identity for these logits); INT8 (after Q/DQ) and FP16 scores agree with FP32's."""
    maps = {}
    for name, path in (("fp32", FP32), ("int8", INT8), ("fp16", FP16)):
        seg = Segmenter(str(path), backend="onnxruntime")
        out = seg.backend.run(seg.feeds(frame), ["logits", "classes"])
        np.testing.assert_array_equal(out["classes"][0], out["logits"][0].argmax(0))
        maps[name] = out["classes"][0]
    assert (maps["int8"] == maps["fp32"]).mean() > 0.95
    assert (maps["fp16"] == maps["fp32"]).mean() > 0.99


def test_smooth_and_point_differ_at_edges_only(frame):
    point = Segmenter(str(FP32), filter_mode="point").process(frame).classes
    smooth = Segmenter(str(FP32), filter_mode="smooth").process(frame).classes
    differ = smooth != point
    band = _edges(point, 2)         # the net's pixel is 1.5 frame pixels here
    assert differ.sum() > 100, differ.sum()
    assert not (differ & ~band).any(), np.argwhere(differ & ~band)[:5]
    assert band.mean() < 0.3        # and they agree on the rest, most of the frame


def test_ignore_class_sky_on_the_command_line(tmp_path):
    plain, ignored = tmp_path / "plain.png", tmp_path / "nosky.png"
    for out, extra in ((plain, []), (ignored, ["--ignore-class", "Sky"])):
        r = run_cli("segment", "--model", FP32, "--visualize", "classes", FRAME, out, *extra)
        assert r.returncode == 0, r.stderr
    a = cv2.imread(str(plain), cv2.IMREAD_UNCHANGED)
    b = cv2.imread(str(ignored), cv2.IMREAD_UNCHANGED)
    assert a.shape == b.shape == (360, 480)
    assert (a == SKY).mean() > 0.02 and not (b == SKY).any()
    np.testing.assert_array_equal(b[a != SKY], a[a != SKY])     # the rest as it was


def test_confidence_with_the_default_model(frame):
    for kw in ({"keep_scores": True}, {"filter_mode": "smooth"}):
        res = Segmenter(str(FP32), **kw).process(frame)
        conf = res.confidence
        assert conf is not None and conf.shape == (360, 480) and conf.dtype == np.float32
        assert conf.min() >= 1.0 / 11 - 1e-6 and conf.max() <= 1.0 + 1e-6
        band = _edges(res.classes, 2)
        assert conf[band].mean() < conf[~band].mean()   # least sure at class boundaries


def test_bench_numpy_baseline_runs_on_the_default_model(frame):
    from jetseg.cli.bench import naive_ort
    fps, why = naive_ort(Segmenter(str(FP32), backend="onnxruntime"), [frame], 1)
    assert why is None and len(fps) == 1 and fps[0] > 0


def test_fp16_file_facts():
    seg = Segmenter(str(FP16))
    assert seg.info.precision == "fp16"
    assert seg.info.extra["converted_from"] == "camvid.onnx"
    parity = seg.info.extra["parity"]
    assert parity["agreement"]["fp16"] >= 0.99 and "101 frame(s)" in parity["frames"]
    fp32 = Segmenter(str(FP32)).info.extra
    assert abs(seg.info.extra["miou"] - fp32["miou"]) < 0.005
    assert json.dumps(seg.info.classes) == json.dumps(Segmenter(str(FP32)).info.classes)
