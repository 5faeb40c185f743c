"""Frame graphs: the camera frame in, the class map and overlay out at its size, one graph.

Checked against what they replace, jetseg's CPU path (OpenCV's INTER_AREA down, the net-size
graph, jetseg.core.processing back up), on CamVid frames enlarged to camera resolutions
where the shared data is present; against every export target's TensorRT parser rules; and
through the Segmenter: picked beside the model for frames of its size, refused in one line
for frames of another.
"""
import json
import logging
import os
import shutil

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from jetseg import JetsegError, Segmenter
from jetseg.core.modelinfo import ModelInfo
from jetseg_export import frameops
from jetseg_export.compose import compose
from jetseg_export.framegraph import core_of, export_from_onnx, frame_models, frames_at
from jetseg_export.targets import TARGETS, check_target, get_target
from tests.helpers.common import COLORS5, NAMES5, ROOT, rng_frame, run_cli
from tests.helpers.tinymodels import TinyNet
from tests.test_python36 import py36  # noqa: F401  (the fixture: its cached venv)

cv2 = pytest.importorskip("cv2")
ort = pytest.importorskip("onnxruntime")

SHIPPED = ROOT / "engines" / "camvid.onnx"
CAMERAS = [(1280, 720), (1920, 1080)]


def _camera_frames(frames, size):
    """CamVid's 480x360 frames as a camera of ``size`` would give them."""
    return [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames]


def _save(model, path):
    onnx.save(model, str(path))
    return str(path)


def _pair(tmp_path, net, size, mode, **kw):
    """(net-size graph with scores: the CPU path's model, frame graph) for a TinyNet."""
    ref = _save(compose(net.onnx(), NAMES5, COLORS5, scores=True, **kw), tmp_path / "net.onnx")
    frame = _save(compose(net.onnx(), NAMES5, COLORS5, frame_size=size, filter_mode=mode, **kw),
                  tmp_path / "net.{}x{}.onnx".format(*size))
    return ref, frame


def _agreement(ref, frame, frames, mode):
    """(class agreement, share of overlay pixels within 2 grey levels), CPU path vs graph."""
    cpu = Segmenter(ref, filter_mode=mode, frame_graph=None)
    gpu = Segmenter(frame)
    same = close = total = 0
    for img in frames:
        a, b = cpu.process(img), gpu.process(img)
        assert b.segmenter is gpu and b.overlay() is b._graph_overlay     # nothing redrawn
        assert a.classes.shape == b.classes.shape == img.shape[:2]
        same += (a.classes == b.classes).sum()
        d = np.abs(a.overlay().astype(int) - b.overlay().astype(int)).max(axis=2)
        close += (d <= 2).sum()
        total += d.size
    return same / float(total), close / float(total)


# ---- the downscale: OpenCV's INTER_AREA, in the graph ---------------------------------
def _downscale_session(frame_wh, net_wh):
    nodes, inits = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), "jetseg_" + name))
        return "jetseg_" + name
    nodes.append(helper.make_node("Cast", ["image"], ["px"], to=onnx.TensorProto.FLOAT))
    out, facts = frameops.downscale(nodes, const, "px", frame_wh, net_wh)
    g = helper.make_graph(nodes, "down", [helper.make_tensor_value_info(
        "image", onnx.TensorProto.UINT8, [1, frame_wh[1], frame_wh[0], 3])],
        [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT,
                                       [1, net_wh[1], net_wh[0], 3])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]), facts


@pytest.mark.parametrize("frame_wh,net_wh,exact", [
    ((1280, 720), (320, 240), 1.0),         # 4 x 3: OpenCV's integer (box) path, bit-exact
    ((640, 480), (320, 240), 1.0),          # 2 x 2: OpenCV rounds half up there
    ((1920, 1200), (320, 240), 1.0),
    ((1920, 1080), (320, 240), 0.99),       # 6 x 4.5: fractional weights
    ((1640, 1232), (320, 240), 0.99),       # Raspberry Pi camera v2 binned: 41/8, 77/15
    ((97, 61), (40, 30), 0.99),
])
def test_in_graph_downscale_is_opencv_inter_area(frame_wh, net_wh, exact):
    sess, facts = _downscale_session(frame_wh, net_wh)
    assert facts["path"] == ("integer box" if exact == 1.0 else "fractional weights")
    for seed in range(2):
        img = rng_frame(frame_wh[0], frame_wh[1], seed=seed)
        got = sess.run(None, {"image": img[None]})[0][0]
        want = cv2.resize(img, net_wh, interpolation=cv2.INTER_AREA).astype(np.float32)
        diff = np.abs(got - want)
        assert diff.max() <= 1 and (diff == 0).mean() >= exact, (diff.max(), (diff == 0).mean())


def test_area_weights_rows_sum_to_one_and_repeat_with_the_period():
    a = frameops.area_weights(1080, 240)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-12)
    assert frameops.period(1080, 240) == (9, 2)
    np.testing.assert_allclose(np.kron(np.eye(120), a[:2, :9]), a, atol=1e-12)
    assert sorted(set(np.round(a[0] * 4.5, 6)) - {0}) == [0.5, 1.0]


# ---- the frame graph against the CPU path ---------------------------------------------
@pytest.mark.parametrize("mode", ["point", "linear", "smooth"])
def test_frame_graph_equals_cpu_path_on_camvid_camera_frames(tmp_path, camvid_frames, mode):
    net = TinyNet(num_classes=5, width=160, height=120, down=8, seed=5)
    for size in CAMERAS:
        ref, frame = _pair(tmp_path, net, size, mode, ignore_class=1)
        agree, overlay = _agreement(ref, frame, _camera_frames(camvid_frames[:2], size), mode)
        assert agree >= 0.995 and overlay >= 0.99, (size, agree, overlay)


def test_frame_graph_equals_cpu_path_on_random_frames_with_confidence(tmp_path):
    net = TinyNet(num_classes=5, width=64, height=48, down=4, seed=3)
    for mode in ("point", "linear", "smooth"):
        ref, frame = _pair(tmp_path, net, (256, 144), mode, confidence=True)
        img = rng_frame(256, 144, seed=3)
        agree, overlay = _agreement(ref, frame, [img], mode)
        assert agree >= 0.995 and overlay >= 0.99, (mode, agree, overlay)
        res = Segmenter(frame).process(img)
        assert res.confidence.shape == (144, 256)
        assert 0.2 <= res.confidence.min() and res.confidence.max() <= 1.0


def test_shipped_model_frame_graph_equals_cpu_path(tmp_path, camvid_frames):
    """engines/camvid.onnx's own net (taken out of its graph, no checkpoint) as frame graphs
    for 1280x720 and 1920x1080 cameras, against the shipped file through the CPU path."""
    if not SHIPPED.is_file():
        pytest.skip("engines/camvid.onnx is not in this checkout")
    model = onnx.load(str(SHIPPED))
    for size, mode in ((CAMERAS[0], "linear"), (CAMERAS[1], "smooth"), (CAMERAS[1], "point")):
        frame, reference, tgt = frame_models(model, size, mode, source=str(SHIPPED))
        assert tgt.name == "trt8.5"                  # the model's own target
        check_target(frame, tgt)
        path = _save(frame, tmp_path / "f.onnx")
        ref = str(SHIPPED) if mode != "smooth" else _save(reference, tmp_path / "ref.onnx")
        agree, overlay = _agreement(ref, path, _camera_frames(camvid_frames[:2], size), mode)
        assert agree >= 0.995 and overlay >= 0.99, (size, mode, agree, overlay)


def test_core_of_gives_back_the_net_itself(tmp_path):
    net = TinyNet(num_classes=5, width=64, height=48, down=4, seed=2)
    full = compose(net.onnx(), NAMES5, COLORS5, ignore_class=2)
    core = core_of(full)
    assert [n.op_type for n in core.graph.node] == ["Conv", "Relu", "AveragePool", "Conv"]
    assert [d.dim_value for d in core.graph.output[0].type.tensor_type.shape.dim] == \
        [1, 5, 12, 16]
    x = np.random.RandomState(0).randn(1, 3, 48, 64).astype(np.float32)
    got = ort.InferenceSession(core.SerializeToString()).run(None, {"input_0": x})[0]
    np.testing.assert_allclose(got[0], net.logits(x[0]), atol=1e-4)
    with pytest.raises(JetsegError, match="not a jetseg export"):
        core_of(net.onnx(), source="plain.onnx")


# ---- every target's TensorRT rules ----------------------------------------------------
@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("mode", ["point", "linear", "smooth"])
def test_frame_graph_keeps_every_targets_parser_rules(target, mode):
    tgt = get_target(target)
    net = TinyNet(num_classes=5, width=64, height=48, down=4, seed=1)
    cdt = tgt.classes_dtype
    m = compose(net.onnx(opset=tgt.opset), NAMES5, COLORS5, input_dtype=tgt.input_dtype,
                classes_dtype=cdt, classes_via=tgt.classes_cast_via(cdt), confidence=True,
                frame_size=(192, 108), filter_mode=mode)
    check_target(m, tgt)                             # raises naming the node otherwise
    inferred = onnx.shape_inference.infer_shapes(m)
    shapes = dict((v.name, [d.dim_value for d in v.type.tensor_type.shape.dim])
                  for v in list(inferred.graph.value_info) + list(inferred.graph.output)
                  + list(inferred.graph.input))
    for n in m.graph.node:
        if n.op_type == "Resize":          # TensorRT's linear resize: innermost 3 dims only
            src, dst = shapes[n.input[0]], shapes[n.output[0]]
            assert src[:-3] == dst[:-3], (n.output, src, dst)
    outs = dict((o.name, shapes[o.name]) for o in m.graph.output)
    assert outs["classes"] == [1, 108, 192] and outs["overlay"] == [1, 108, 192, 3]
    assert shapes["image"] == [1, 108, 192, 3]


def test_float_input_frame_graph_for_trt82_equals_the_uint8_one(tmp_path):
    """TensorRT 8.2 takes no uint8: its frame graph takes float32 frames and gives an int32
    class map and a float overlay; the runtime reads both the same."""
    net = TinyNet(num_classes=5, width=64, height=48, down=4, seed=4)
    t82 = get_target("trt8.2")
    f32 = _save(compose(net.onnx(opset=13), NAMES5, COLORS5, input_dtype="float32",
                        classes_dtype="int32", frame_size=(256, 144)), tmp_path / "f32.onnx")
    u8 = _save(compose(net.onnx(), NAMES5, COLORS5, frame_size=(256, 144)), tmp_path / "u8.onnx")
    check_target(onnx.load(f32), t82)
    img = rng_frame(256, 144, seed=4)
    a, b = Segmenter(f32).process(img), Segmenter(u8).process(img)
    assert np.array_equal(a.classes, b.classes)
    assert np.abs(a.overlay().astype(int) - b.overlay().astype(int)).max() <= 1


# ---- the runtime picks it -------------------------------------------------------------
def test_segmenter_uses_the_frame_graph_beside_the_model_and_says_so(tmp_path, caplog):
    net = TinyNet(num_classes=5, width=64, height=48, down=4, seed=6)
    ref, frame = _pair(tmp_path, net, (256, 144), "linear")
    caplog.set_level(logging.INFO, logger="jetseg")
    seg = Segmenter(ref)
    for _ in range(2):
        big = seg.process(rng_frame(256, 144, seed=1))
        other = seg.process(rng_frame(128, 96, seed=1))
        own = seg.process(rng_frame(64, 48, seed=1))
    assert big.segmenter.path == frame and big.overlay() is big._graph_overlay
    assert other.segmenter is seg and own.segmenter is seg
    lines = [r.getMessage() for r in caplog.records]
    assert sum("256x144 frames: frame graph" in line for line in lines) == 1
    cpu = [line for line in lines if "128x96 frames take the CPU path" in line]
    assert len(cpu) == 1 and "--frame-size 128x96" in cpu[0]
    assert not any("64x48 frames" in line for line in lines)
    assert Segmenter(ref, frame_graph=None).process(rng_frame(256, 144)).segmenter.path == ref
    seg.close()
    assert seg._routes == {}


def test_engine_names_find_their_frame_graph(tmp_path):
    from jetseg.core import framegraph
    assert framegraph.sibling_names("m/camvid.fp16.engine", (1280, 720)) == [
        os.path.join("m", "camvid.fp16.1280x720.engine"),
        os.path.join("m", "camvid.1280x720.fp16.engine")]
    (tmp_path / "camvid.1280x720.fp16.engine").write_bytes(b"x")
    assert framegraph.find_frame_graph(str(tmp_path / "camvid.fp16.engine"), (1280, 720)) == \
        str(tmp_path / "camvid.1280x720.fp16.engine")
    assert framegraph.find_frame_graph(str(tmp_path / "camvid.fp16.engine"), (640, 480)) is None


def test_frame_goes_in_as_it_is_and_only_the_outputs_come_back(tmp_path):
    net = TinyNet(num_classes=5, width=64, height=48, down=4, seed=8)
    _, frame = _pair(tmp_path, net, (256, 144), "smooth")
    seg = Segmenter(frame)
    img = rng_frame(256, 144, seed=8)
    feed = seg.feeds(img)["image"]
    assert feed.shape == (1, 144, 256, 3) and np.shares_memory(feed, img)    # no CPU copy
    assert sorted(seg.plan.fetch(True)) == ["classes", "overlay"]            # no scores
    assert seg.filter_mode == "smooth" and seg.frame_size == (256, 144)


def test_frame_of_another_size_is_one_line_naming_the_size_and_the_fix(tmp_path):
    net = TinyNet(num_classes=5, width=64, height=48, down=4, seed=9)
    _, frame = _pair(tmp_path, net, (256, 144), "linear")
    with pytest.raises(JetsegError) as e:
        Segmenter(frame).process(rng_frame(320, 240))
    text = str(e.value)
    assert "takes 256x144 frames" in text and "this frame is 320x240" in text
    assert "--frame-size 320x240" in text and "\n" not in text
    img = tmp_path / "f.png"
    cv2.imwrite(str(img), rng_frame(320, 240))
    p = run_cli("segment", "--model", frame, str(img), str(tmp_path / "out.png"))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "takes 256x144 frames" in p.stderr.strip().splitlines()[-1]


def test_frame_facts_travel_in_the_metadata():
    net = TinyNet(num_classes=5, width=64, height=48, down=4)
    m = compose(net.onnx(), NAMES5, COLORS5, frame_size=(1280, 720), filter_mode="point")
    info = ModelInfo.from_metadata(dict((p.key, p.value) for p in m.metadata_props))
    assert (info.width, info.height) == (1280, 720)
    f = info.frame
    assert (f["net_width"], f["net_height"], f["filter"]) == (64, 48, "point")
    assert f["downscale"]["method"] == "area" and f["downscale"]["path"] == "integer box"
    assert "frame graph: 1280x720 frames -> net 64x48" in info.describe()
    bad = info.to_metadata()
    bad["jetseg.frame"] = json.dumps({"width": 10})
    with pytest.raises(JetsegError, match="malformed"):
        ModelInfo.from_metadata(bad, source="x.onnx")


# ---- jetseg export --frame-size --------------------------------------------------------
def test_export_from_an_onnx_writes_a_checked_frame_graph(tmp_path, capsys):
    from jetseg_export.cli import main
    net = TinyNet(num_classes=5, width=64, height=48, down=4, seed=10)
    src = _save(compose(net.onnx(), NAMES5, COLORS5, alpha=90,
                        extra={"target": "trt10", "arch": "tiny"}), tmp_path / "tiny.onnx")
    out = tmp_path / "tiny.256x144.onnx"
    assert main(["--from", src, "--frame-size", "256x144", "--filter-mode", "smooth",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "frame graph 256x144 (smooth) vs CPU path" in printed
    m = onnx.load(str(out))
    props = dict((p.key, json.loads(p.value)) for p in m.metadata_props)
    assert props["jetseg.target"] == "trt10" and props["jetseg.arch"] == "tiny"
    assert props["jetseg.frame_of"] == "tiny.onnx" and props["jetseg.graph"]["alpha"] == 90
    assert props["jetseg.frame_parity"]["agreement"] >= 0.995
    seg = Segmenter(src)                # and the runtime finds it beside its source
    assert seg.process(rng_frame(256, 144)).segmenter.path == str(out)


@pytest.mark.parametrize("args,message", [
    (["--frame-size", "32x24"], "smaller than the net's input 64x48"),
    ([], "needs --frame-size"),
    (["--frame-size", "256x144", "--checkpoint", "x.pth"], "--checkpoint cannot change"),
    (["--frame-size", "256by144"], "--frame-size '256by144' is not WIDTHxHEIGHT"),
    (["--frame-size", "256x144", "--target", "trt8.2"], "takes at most 13"),
])
def test_export_from_errors_are_one_line(tmp_path, capsys, args, message):
    from jetseg_export.cli import main
    net = TinyNet(num_classes=5, width=64, height=48, down=4)
    src = _save(compose(net.onnx(), NAMES5, COLORS5), tmp_path / "tiny.onnx")
    assert main(["--from", src, "-o", str(tmp_path / "o.onnx")] + args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "o.onnx").exists()


def test_export_from_checkpoint_with_frame_size(tmp_path):
    pytest.importorskip("torch")
    from jetseg_export import exporter
    from tests.helpers.exportnets import make_net
    out = tmp_path / "m.onnx"
    res = exporter.export_onnx(make_net("unet"), str(out), 5, width=64, height=48,
                               check_count=2, frame_size=(192, 144), filter_mode="point")
    assert res.row("onnx fp32").agreement >= 0.999          # the net against PyTorch
    assert "frame graph 192x144 (point) vs CPU path" in res.frame
    info = Segmenter(str(out)).info
    assert (info.width, info.height) == (192, 144) and info.frame["net_width"] == 64
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["classes", "overlay"]


def test_frames_at_enlarges_real_images_like_a_camera(camvid):
    frames, where = frames_at((1280, 720), str(camvid / "val"), 2)
    assert len(frames) == 2 and frames[0].shape == (720, 1280, 3) and "resized" in where


def test_export_from_the_shipped_model_cli(tmp_path, camvid):
    if not SHIPPED.is_file():
        pytest.skip("engines/camvid.onnx is not in this checkout")
    src = tmp_path / "camvid.onnx"
    shutil.copy(str(SHIPPED), str(src))
    _, summary = export_from_onnx(str(src), str(tmp_path / "camvid.1280x720.onnx"),
                                  (1280, 720), "linear", check_images=str(camvid / "val"),
                                  check_count=2)
    assert "class agreement" in summary
    info = Segmenter(str(tmp_path / "camvid.1280x720.onnx")).info
    assert info.extra["target"] == "trt8.5" and info.classes[0] == "Sky"


def test_build_carries_the_frame_facts_into_the_engine(tmp_path, monkeypatch):
    """jetseg build's path for a frame graph, through recording stand-ins of TensorRT 8.2 and
    10.3: the engine's header holds the frame facts the runtime reads (read from the ONNX
    file without onnx). TensorRT itself never runs here: the parser rules (above) are the
    check of what it would accept."""
    from jetseg.backends.tensorrt import engine_file
    from jetseg.backends.tensorrt.build import build_engine
    from tests.helpers.trt_fakes import NANO, ORIN, FakeBuilderTrt
    from tests.helpers.trt_fakes import fake_platform as fake_platform_setter
    net = TinyNet(num_classes=5, width=64, height=48, down=4)
    for version, facts, opset, dtype in (("8.2.1.8", NANO, 13, "float32"),
                                         ("10.3.0.30", ORIN, 17, "uint8")):
        model = _save(compose(net.onnx(opset=opset), NAMES5, COLORS5, input_dtype=dtype,
                              classes_dtype="int32" if dtype == "float32" else "uint8",
                              frame_size=(256, 144)), tmp_path / "m.256x144.onnx")
        trt = FakeBuilderTrt(version)
        out = build_engine(model, precision="fp16", facts=fake_platform_setter(monkeypatch)(
            trt, facts), out=str(tmp_path / "m.engine"))
        header, _ = engine_file.read_engine(out)
        info = ModelInfo.from_metadata(header["metadata"])
        assert info.frame["width"] == 256 and info.frame["net_width"] == 64


PROBE36 = r"""
import sys, json, numpy as np, jetseg
net_model, frame_model, frame_path, out = sys.argv[1:5]
frame = np.load(frame_path)
a = jetseg.Segmenter(frame_model).process(frame)
picked = jetseg.Segmenter(net_model).process(frame)
json.dump({"classes": a.classes.tolist(), "overlay": a.overlay().tolist(),
           "picked": picked.segmenter.path, "version": list(sys.version_info[:2])},
          open(out, "w"))
"""


def test_frame_graph_on_python36_numpy119(py36, tmp_path):  # noqa: F811
    """The Nano's Python 3.6 / numpy 1.19 / ONNX Runtime 1.10 runs a frame graph (opset 13)
    and picks it beside the net-size model (slow: the venv of tests/test_python36.py)."""
    import subprocess
    net = TinyNet(num_classes=5, width=64, height=48, down=4, seed=11)
    models = []
    for name, kw in (("m.onnx", {}), ("m.256x144.onnx", {"frame_size": (256, 144)})):
        m = compose(net.onnx(opset=13), NAMES5, COLORS5, **kw)
        m.ir_version = 7                                  # what ONNX Runtime 1.10 reads
        models.append(_save(m, tmp_path / name))
    frame = rng_frame(256, 144, seed=11)
    np.save(str(tmp_path / "f.npy"), frame)
    r = subprocess.run([py36, "-c", PROBE36] + models + [str(tmp_path / "f.npy"),
                       str(tmp_path / "r.json")], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.load(open(str(tmp_path / "r.json")))
    here = Segmenter(models[1]).process(frame)
    assert got["version"] == [3, 6] and got["picked"] == models[1]
    assert np.array_equal(np.array(got["classes"]), here.classes)
    assert np.abs(np.array(got["overlay"]) - here.overlay()).max() <= 1
