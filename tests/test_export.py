"""jetseg export: every --arch with parity, targets read back from the graph, the exported
file through the runtime, --module, checkpoints and the errors a user can hit.

Small sizes and random weights (nothing is downloaded); CamVid frames when present.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torchvision")

from onnx import TensorProto, helper  # noqa: E402

from jetseg.core import processing as render  # noqa: E402
from jetseg.errors import JetsegError  # noqa: E402
from jetseg.core.segmenter import Segmenter  # noqa: E402
from jetseg_export import archs, exporter, parity  # noqa: E402
from jetseg_export.cli import main as export_main  # noqa: E402
from jetseg_export.progress import Progress  # noqa: E402
from jetseg_export import trt_rules  # noqa: E402
from jetseg_export.compose import compose  # noqa: E402
from jetseg_export.targets import TARGETS, check_target, decompose_hardswish  # noqa: E402

from tests.helpers.exportnets import (CAMVID, MEAN, ROOT, STD, camvid_or_skip, frame_at,  # noqa: E402,F401
                                     load, make_net, meta, torch_classes, user_pkg, vary)


# ---- every --arch ---------------------------------------------------------------------
SIZES = {"fcn8s-vgg16": (64, 48)}


@pytest.mark.parametrize("arch", list(archs.ARCHS))
def test_every_arch_exports_with_parity(arch, tmp_path):
    w, h = SIZES.get(arch, (64, 48))
    net = make_net(arch)
    out = tmp_path / "m.onnx"
    res = exporter.export_onnx(net, str(out), 5, width=w, height=h, arch=arch, check_count=2)
    row = res.row("onnx fp32")
    assert row.total == 2 * w * h
    assert row.agreement >= 0.999
    # logits equal to float precision, relative to their size
    frame = frame_at(w, h)
    x = torch.from_numpy(parity.normalise(frame, MEAN, STD))
    with torch.no_grad():
        ref = archs.LogitsOnly(net)(x)[0].numpy()
    assert row.max_err <= 1e-4 * max(1.0, float(np.abs(ref).max()))
    # the written file, through the runtime, gives PyTorch's classes
    m = load(out)
    assert meta(m)["jetseg.arch"] == arch
    assert meta(m)["jetseg.parity"]["agreement"]["fp32"] >= 0.999
    seg = Segmenter(str(out))
    got = seg.process(frame).classes
    want = torch_classes(net, frame)
    assert (got == want).mean() >= 0.999


def test_torchvision_outputs_are_dicts_and_handled():
    net = archs.build_arch("lraspp-mobilenet", 3)
    out = net.eval()(torch.zeros(1, 3, 32, 32))
    assert isinstance(out, dict) and "out" in out
    assert archs.LogitsOnly(net)(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


# ---- targets --------------------------------------------------------------------------
def _types(model):
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    t = dict((v.name, v.type.tensor_type.elem_type) for v in
             list(g.input) + list(g.output) + list(g.value_info))
    t.update((i.name, i.data_type) for i in g.initializer)
    return t


@pytest.fixture(scope="module")
def lraspp():
    return make_net("lraspp-mobilenet", 4)          # has HardSwish / HardSigmoid


@pytest.mark.parametrize("target", ["trt8.2", "trt8.5", "trt8.6", "trt10", "trt11",
                                    "onnxruntime"])
def test_target_constraints_read_from_graph(target, lraspp, tmp_path):
    out = tmp_path / "m.onnx"
    exporter.export_onnx(lraspp, str(out), 4, width=64, height=48, target=target,
                         check_count=1, confidence=True)
    m = load(out)
    opset = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")][0]
    ins = dict((i.name, i.type.tensor_type.elem_type) for i in m.graph.input)
    outs = dict((o.name, o.type.tensor_type.elem_type) for o in m.graph.output)
    ops = set(n.op_type for n in m.graph.node)
    assert meta(m)["jetseg.target"] == target
    if target == "trt8.2":
        assert opset == 13
        assert ins == {"image": TensorProto.FLOAT}
        assert outs["classes"] == TensorProto.INT32
        assert outs["overlay"] == TensorProto.FLOAT
        assert "HardSwish" not in ops and "HardSigmoid" in ops
        assert TensorProto.UINT8 not in _types(m).values()
        assert ops <= TARGETS["trt8.2"].ops
    else:
        assert opset == 17
        assert ins == {"image": TensorProto.UINT8}
        assert outs["classes"] == TensorProto.UINT8
        assert outs["overlay"] == TensorProto.UINT8
        if target != "onnxruntime":
            assert ops <= TARGETS[target].ops
    assert outs["confidence"] == TensorProto.FLOAT
    onnx.checker.check_model(m, full_check=True)
    for release in TARGETS[target].releases:        # what was written obeys its parser rules
        assert trt_rules.check_graph(m, release) == [], release


def _producers(model):
    return dict((o, n) for n in model.graph.node for o in n.output)


def _cast_to(node):
    return [a.i for a in node.attribute if a.name == "to"][0]


@pytest.mark.parametrize("target", ["trt8.5", "trt8.6", "trt10", "trt11"])
def test_uint8_class_map_reaches_tensorrt_through_float(target, lraspp, tmp_path):
    """D1: TensorRT casts to uint8 only from float/half (8.5 parser; 8.6+ NvInferRuntimeBase.h).

    The default target's graph used to cast ArgMax's ids straight to uint8: the parser rules
    report that graph, and the export now writes ArgMax -> Cast FLOAT -> Cast UINT8.
    """
    out = tmp_path / "m.onnx"
    exporter.export_onnx(lraspp, str(out), 4, width=64, height=48, target=target,
                         check_count=1)
    m = load(out)
    releases = TARGETS[target].releases
    assert all(trt_rules.check_graph(m, r) == [] for r in releases)
    producer = _producers(m)
    last = producer["classes"]
    assert last.op_type == "Cast" and _cast_to(last) == TensorProto.UINT8
    via = producer[last.input[0]]
    assert via.op_type == "Cast" and _cast_to(via) == TensorProto.FLOAT
    assert producer[via.input[0]].op_type == "ArgMax"
    # the graph as it was composed before (ids cast straight to uint8) is what the rules refuse
    core = exporter.torch_to_onnx(exporter.archs.LogitsOnly(lraspp).eval(), 64, 48, 17)
    old = compose(core, list("abcd"), [(1, 2, 3)] * 4, classes_dtype="uint8", classes_via=None)
    assert trt_rules.check_graph(compose(core, list("abcd"), [(1, 2, 3)] * 4), "8.5") == []
    found = [f for r in releases for f in trt_rules.check_graph(old, r)]
    assert [(f.node, f.op) for f in found] == [("classes", "Cast")] * len(releases)
    assert "to UINT8" in found[0].problem and "FLOAT" in found[0].fix
    # and the class ids are still PyTorch's
    frame = frame_at(64, 48)
    assert (Segmenter(str(out)).process(frame).classes == torch_classes(lraspp, frame)).mean() \
        >= 0.999


def test_default_target_is_trt85():
    from jetseg_export.cli import build_parser
    assert build_parser().parse_args(["-o", "x.onnx"]).target == "trt8.5"
    assert set(build_parser()._option_string_actions["--target"].choices) == set(TARGETS)


def _tiny_model(op, opset=13, name="my_node"):
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 4, 4, 3])
    y = helper.make_tensor_value_info("classes", TensorProto.INT32, [1, 4, 4, 3])
    b = onnx.numpy_helper.from_array(np.array(3.0, np.float32), "b")
    nodes = [helper.make_node(op, ["image", "b"], ["m"], name=name, **(
        {"fmod": 1} if op == "Mod" else {})),
        helper.make_node("Cast", ["m"], ["classes"], to=TensorProto.INT32)]
    g = helper.make_graph(nodes, "t", [x], [y], [b])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_target_check_names_the_node_it_cannot_take():
    with pytest.raises(JetsegError, match="my_node.*Mod.*TensorRT 8.2"):
        check_target(_tiny_model("Mod"), "trt8.2")
    check_target(_tiny_model("Add"), "trt8.2")
    with pytest.raises(JetsegError, match="opset 17.*at most 13"):
        check_target(_tiny_model("Add", opset=17), "trt8.2")
    with pytest.raises(JetsegError, match="input is float.*uint8"):
        check_target(_tiny_model("Add", opset=17), "trt8.5")


def test_hardswish_decomposed_equals_hardswish():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    g = helper.make_graph([helper.make_node("HardSwish", ["x"], ["y"], name="hs")], "t", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    data = np.linspace(-5, 5, 8, dtype=np.float32)[None]
    want = ort.InferenceSession(m.SerializeToString()).run(None, {"x": data})[0]
    decompose_hardswish(m)
    assert "HardSwish" not in [n.op_type for n in m.graph.node]
    got = ort.InferenceSession(m.SerializeToString()).run(None, {"x": data})[0]
    np.testing.assert_allclose(got, want, atol=1e-6)


# ---- the exported graph agrees with the runtime's CPU path ----------------------------
@pytest.mark.parametrize("target", ["trt8.2", "trt8.5"])
def test_exported_graph_matches_cpu_path(target, tmp_path):
    net = make_net("fcn-resnet18", 6)
    out = tmp_path / "m.onnx"
    exporter.export_onnx(net, str(out), 6, width=80, height=64, target=target, scores=True,
                         check_count=1, ignore_class=2, alpha=120)
    seg = Segmenter(str(out))
    m = load(out)
    names = meta(m)["jetseg.outputs"]
    assert set(names) == {"scores", "classes", "overlay"}
    sess = ort.InferenceSession(str(out))
    frame = frame_at(80, 64, seed=3)
    feed = frame[None].astype(np.float32 if target == "trt8.2" else np.uint8)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": feed})))
    scores = got[names["scores"]][0]
    up = render.resize_linear(np.ascontiguousarray(scores.transpose(1, 2, 0)), 80, 64)
    cpu_classes = render.argmax_hwc(up, ignore_class=2)
    graph_classes = got["classes"][0]
    assert len(np.unique(graph_classes)) > 1 and 2 not in graph_classes
    np.testing.assert_array_equal(graph_classes.astype(np.int64), cpu_classes)
    cpu_overlay = render.Palette(seg.colors, 120).blend(frame, cpu_classes)
    diff = np.abs(got["overlay"][0].astype(np.int16) - cpu_overlay.astype(np.int16))
    assert diff.max() <= 1
    # and the Segmenter reading the file takes the graph's results as they are
    res = seg.process(frame)
    np.testing.assert_array_equal(res.classes, cpu_classes)
    assert np.abs(res.overlay().astype(np.int16) - cpu_overlay).max() <= 1


# ---- real frames ----------------------------------------------------------------------
def test_parity_on_camvid_frames_with_labels(tmp_path):
    cv = camvid_or_skip()
    net = make_net("fcn-resnet18", 11)
    out = tmp_path / "m.onnx"
    res = exporter.export_onnx(net, str(out), 11, width=96, height=72,
                               check_images=os.path.join(cv, "val"),
                               check_labels=os.path.join(cv, "valannot"), check_count=3)
    assert "3 frame(s) from" in res.table and "mIoU" in res.table
    fp32 = res.row("onnx fp32")
    assert fp32.agreement >= 0.999 and fp32.has_labels
    torch_row = res.row("pytorch fp32")
    assert abs(torch_row.conf.miou() - fp32.conf.miou()) < 0.01
    assert "jetseg.miou" in meta(load(out))


def test_parity_failure_is_loud_and_writes_nothing(tmp_path):
    class Traced(torch.nn.Module):
        """Data-dependent branch: tracing keeps the branch the all-zero dummy takes."""

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            return y if bool(x.abs().sum() > 0) else -y

    out = tmp_path / "bad.onnx"
    with pytest.raises(JetsegError, match="agrees with PyTorch on only"):
        exporter.export_onnx(Traced().eval(), str(out), 3, width=32, height=32, check_count=2)
    assert not out.exists()


# ---- checkpoints ----------------------------------------------------------------------
def test_checkpoint_loads_and_is_what_gets_exported(tmp_path):
    src = make_net("fcn-resnet18", 3, seed=5)
    ckpt = tmp_path / "best.pth"
    torch.save({"model": {"module." + k: v for k, v in src.state_dict().items()},
                "epoch": 3}, str(ckpt))
    net = exporter.build_net(arch="fcn-resnet18", num_classes=3, checkpoint=str(ckpt))
    for k, v in src.state_dict().items():
        assert torch.equal(net.state_dict()[k], v)
    out = tmp_path / "m.onnx"
    exporter.export_onnx(net, str(out), 3, width=64, height=48, check_count=1)
    frame = frame_at(64, 48)
    assert (Segmenter(str(out)).process(frame).classes == torch_classes(src, frame)).mean() \
        >= 0.999


def test_torchvision_checkpoint_with_aux_head_loads(tmp_path):
    from torchvision.models.segmentation import fcn_resnet50
    tv = fcn_resnet50(weights=None, weights_backbone=None, num_classes=4, aux_loss=True)
    ckpt = tmp_path / "tv.pth"
    torch.save(tv.state_dict(), str(ckpt))
    net = exporter.build_net(arch="fcn-resnet50", num_classes=4, checkpoint=str(ckpt))
    assert net.aux_classifier is None
    assert torch.equal(net.classifier[4].weight, tv.classifier[4].weight)


def test_checkpoint_for_another_class_count(tmp_path):
    ckpt = tmp_path / "c21.pth"
    torch.save(archs.build_arch("fcn-resnet18", 21).state_dict(), str(ckpt))
    with pytest.raises(JetsegError, match="checkpoint is for 21 classes but --num-classes is "
                                          "12.*--num-classes 21"):
        exporter.build_net(arch="fcn-resnet18", num_classes=12, checkpoint=str(ckpt))


def test_checkpoint_key_mismatch_lists_keys(tmp_path):
    ckpt = tmp_path / "other.pth"
    torch.save(archs.build_arch("lraspp-mobilenet", 3).state_dict(), str(ckpt))
    with pytest.raises(JetsegError) as e:
        exporter.build_net(arch="fcn-resnet18", num_classes=3, checkpoint=str(ckpt))
    text = str(e.value)
    assert "missing key(s): backbone.conv1.weight" in text
    assert "unexpected key(s): backbone.0.0.weight" in text


def test_whole_pickled_model_is_refused_with_weights_only(tmp_path):
    ckpt = tmp_path / "whole.pth"
    torch.save(archs.build_arch("lraspp-mobilenet", 3), str(ckpt))
    with pytest.raises(JetsegError, match="weights_only=True.*model.state_dict"):
        exporter.build_net(arch="lraspp-mobilenet", num_classes=3, checkpoint=str(ckpt))


# ---- the command line -----------------------------------------------------------------
def test_cli_module_with_checkpoint_labels_and_colors(user_pkg, capsys):
    import importlib
    Net = importlib.import_module("mypkg.models").Net
    torch.manual_seed(1)
    src = Net(5)
    torch.save(src.state_dict(), str(user_pkg / "m.pth"))
    (user_pkg / "classes.txt").write_text("a\nb\nc\nd\ne\n")
    (user_pkg / "colors.txt").write_text("255 0 0\n0 255 0\n0 0 255\n9 9 9\n1 2 3 200\n")
    rc = export_main(["--module", "mypkg.models:build", "--checkpoint", "m.pth",
                      "--num-classes", "5", "--labels", "classes.txt", "--colors",
                      "colors.txt", "--input-size", "40x32", "-o", "out/m.onnx",
                      "--check-count", "2", "--ignore-class", "c"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "onnx fp32" in captured.out and "100.000%" in captured.out
    m = load(user_pkg / "out" / "m.onnx")
    md = meta(m)
    assert md["jetseg.classes"] == list("abcde")
    assert md["jetseg.colors"][4] == [1, 2, 3, 200]
    assert md["jetseg.graph"]["ignore_class"] == 2
    assert md["jetseg.arch"] == "mypkg.models:build"
    assert md["jetseg.input"]["width"] == 40 and md["jetseg.input"]["height"] == 32
    frame = frame_at(40, 32)
    got = Segmenter(str(user_pkg / "out" / "m.onnx")).process(frame).classes
    assert (got == torch_classes(src, frame, ignore_class=2)).mean() >= 0.999


def test_cli_module_op_the_target_cannot_take(user_pkg, capsys):
    args = ["--module", "mypkg/models.py:Fmod", "--num-classes", "3", "--input-size", "32x32",
            "--check-count", "1"]
    assert export_main(args + ["--target", "trt8.2", "-o", "a.onnx"]) == 2
    err = capsys.readouterr().err.splitlines()[-1]    # after the random-weights warning
    assert err.startswith("jetseg: error: ")
    assert "(Mod)" in err and "TensorRT 8.2" in err and "node '" in err
    assert not (user_pkg / "a.onnx").exists()
    assert export_main(args + ["--target", "onnxruntime", "-o", "b.onnx"]) == 0
    assert (user_pkg / "b.onnx").exists()


@pytest.mark.parametrize("args,message", [
    (["--arch", "deeplabv3-mobilnet", "--num-classes", "3"],
     "unknown --arch 'deeplabv3-mobilnet' (did you mean deeplabv3-mobilenet?)"),
    (["--arch", "unet", "--num-classes", "3", "--input-size", "480by360"],
     "--input-size '480by360' is not WIDTHxHEIGHT"),
    (["--arch", "unet", "--num-classes", "3", "--input-size", "0x360"],
     "is not WIDTHxHEIGHT"),
    (["--arch", "unet"], "--num-classes N or --labels"),
    (["--arch", "unet", "--num-classes", "3", "--precision", "int8"], "--calib DIR"),
    (["--arch", "unet", "--num-classes", "3", "--ignore-class", "7"], "not a class id"),
    (["--arch", "unet", "--num-classes", "3", "--checkpoint", "nope.pth"],
     "checkpoint not found"),
    (["--module", "no_such_pkg_xyz:build", "--num-classes", "3"], "cannot import"),
])
def test_cli_errors_are_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = export_main(args + ["-o", "x.onnx"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("jetseg: error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err and not (tmp_path / "x.onnx").exists()


def test_cli_debug_shows_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(JetsegError):
        export_main(["--arch", "nope", "--num-classes", "3", "-o", "x.onnx", "--debug"])


def test_jetseg_export_without_torch_says_how_to_install(tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from jetseg.cli import main\n"
            "sys.exit(main(['export', '--arch', 'unet', '--num-classes', '3', '-o', 'x.onnx']))")
    p = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode == 2
    assert "pip install 'jetseg[export]'" in p.stderr
    assert "Traceback" not in p.stderr


def test_runtime_still_never_imports_torch():
    code = ("import sys, jetseg, jetseg.cli, jetseg.core.segmenter, jetseg.core.processing\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert p.returncode == 0, p.stderr


def test_progress_bar_writes_one_finished_line_off_a_terminal():
    import io
    buf = io.StringIO()
    with Progress(3, "parity", stream=buf) as bar:
        for _ in range(3):
            bar.update()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and "[" + "#" * 24 + "] 3/3 img" in lines[0]
