"""The export's rewrites, each against the real thing: adaptive pooling against PyTorch's,
lowered ONNX ops and down-converted opsets against ONNX Runtime running the original op,
the dynamo fallback on a layer the TorchScript exporter cannot take, the output conventions
and the one-line refusals (exit 2) for what cannot be exported.
"""
import logging
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import torch.nn.functional as F  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

from jetseg.errors import JetsegError  # noqa: E402
from jetseg_export import conventions, exporter, lowering, tracing  # noqa: E402
from jetseg_export.cli import main as export_main  # noqa: E402
from jetseg_export.pooling import static_adaptive_pool2d, static_adaptive_pooling, windows  # noqa: E402,E501
from jetseg_export.targets import TARGETS  # noqa: E402

from tests.helpers.exportnets import load, meta  # noqa: E402


# ---- adaptive pooling ------------------------------------------------------------------
def test_windows_are_atens():
    # ATen: start = floor(i*n/out), end = ceil((i+1)*n/out)
    assert windows(32, 6) == [(0, 6), (5, 11), (10, 16), (16, 22), (21, 27), (26, 32)]
    assert windows(7, 3) == [(0, 3), (2, 5), (4, 7)]


@pytest.mark.parametrize("mode", ["avg", "max"])
def test_static_adaptive_pool_equals_pytorch(mode):
    ref = F.adaptive_avg_pool2d if mode == "avg" else F.adaptive_max_pool2d
    g = torch.Generator().manual_seed(0)
    for h, w in [(32, 64), (9, 7), (36, 48), (1, 5)]:
        for out in [1, 2, 3, 6, (4, 7), (5, None), (12, 20)]:
            x = torch.randn(2, 3, h, w, generator=g)
            want, got = ref(x, out), static_adaptive_pool2d(x, out, mode)
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


class Pyramid(nn.Module):
    """PSPNet's pyramid: bins 1, 2, 3, 6 (avg) and a max bin, upsampled and concatenated."""

    def __init__(self, k=4):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=4, padding=1)
        self.bins = nn.ModuleList([nn.AdaptiveAvgPool2d(b) for b in (1, 2, 3, 6)] +
                                  [nn.AdaptiveMaxPool2d((3, 5))])
        self.head = nn.Conv2d(8 * 6, k, 1)

    def forward(self, x):
        f = self.stem(x)
        size = f.shape[2:]
        feats = [f] + [F.interpolate(b(f), size=size, mode="bilinear", align_corners=False)
                       for b in self.bins]
        return self.head(torch.cat(feats, 1))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_alone_refuses_pyramid_pooling():
    import io
    net = Pyramid().eval()
    with tracing.quiet_output(), pytest.raises(Exception, match="adaptive"):
        torch.onnx.export(net, torch.zeros(1, 3, 128, 256), io.BytesIO(), opset_version=17,
                          dynamo=False)


@pytest.mark.parametrize("target", ["trt8.2", "trt8.5"])
def test_pyramid_pooling_exports_exactly(target, tmp_path):
    torch.manual_seed(0)
    net = Pyramid().eval()
    out = tmp_path / "p.onnx"
    # 256x128 -> 64x32 features: bins 3 and 6 do not divide them, nor (3, 5) for max
    res = exporter.export_onnx(net, str(out), 4, width=256, height=128, target=target,
                               check_count=2)
    row = res.row("onnx fp32")
    assert row.agreement >= 0.999
    assert row.max_err <= 1e-4 * max(1.0, row.max_ref)
    m = load(out)
    assert meta(m)["jetseg.exporter"] == "torchscript"
    ops = [n.op_type for n in m.graph.node]
    assert "ReduceMax" in ops and ops.count("ReduceMean") >= 2 * (3 + 6)
    assert set(ops) <= TARGETS[target].ops
    # the patch is gone afterwards
    assert F.adaptive_avg_pool2d.__module__ == "torch.nn.functional"


# ---- ONNX lowering ---------------------------------------------------------------------
def _model(nodes, inputs, outputs, opset, inits=()):
    g = helper.make_graph(nodes, "t", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _run(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


class _Target(object):
    """A target as lowering sees it: an opset and the ops its parser takes."""

    def __init__(self, opset, ops, note="test target"):
        self.opset, self.ops, self.note, self.name = opset, ops, note, note


@pytest.mark.parametrize("axis,shape,bias,opset", [(-1, [2, 5, 8], True, 17),
                                                   (1, [1, 4, 3, 5], False, 17),
                                                   (-2, [2, 6, 4], True, 18)])
def test_layer_norm_lowered_equals_layer_norm(axis, shape, bias, opset):
    rng = np.random.RandomState(0)
    norm = shape[axis:] if axis >= 0 else shape[axis:]
    inits = [numpy_helper.from_array(rng.randn(*norm).astype(np.float32), "s")]
    ins = ["x", "s"]
    if bias:
        inits.append(numpy_helper.from_array(rng.randn(*norm).astype(np.float32), "b"))
        ins.append("b")
    node = helper.make_node("LayerNormalization", ins, ["y"], name="ln", axis=axis,
                            epsilon=1e-3)
    m = _model([node], [_vi("x", shape)], [_vi("y", shape)], opset, inits)
    x = (rng.randn(*shape) * 3 + 1).astype(np.float32)
    want = _run(m, {"x": x})[0]
    notes = lowering.lower(m, TARGETS["trt8.5"])
    ops = [n.op_type for n in m.graph.node]
    assert "LayerNormalization" not in ops
    assert ops[:7] == ["ReduceMean", "Sub", "Pow", "ReduceMean", "Add", "Sqrt", "Div"]
    assert notes[-1] == "1 LayerNormalization -> {} (exact)".format("/".join(ops))
    assert set(ops) <= TARGETS["trt8.5"].ops
    onnx.checker.check_model(m, full_check=True)
    np.testing.assert_allclose(_run(m, {"x": x})[0], want, rtol=1e-5, atol=1e-5)


def test_layer_norm_kept_where_the_target_takes_it():
    s = numpy_helper.from_array(np.ones(4, np.float32), "s")
    m = _model([helper.make_node("LayerNormalization", ["x", "s"], ["y"])],
               [_vi("x", [1, 4])], [_vi("y", [1, 4])], 17, [s])
    assert lowering.lower(m, TARGETS["trt10"]) == []
    assert lowering.lower(m, TARGETS["onnxruntime"]) == []
    assert [n.op_type for n in m.graph.node] == ["LayerNormalization"]


def test_layer_norm_float16_keeps_float32_statistics():
    s = numpy_helper.from_array(np.full(6, 0.5, np.float16), "s")
    m = _model([helper.make_node("LayerNormalization", ["x", "s"], ["y"])],
               [_vi("x", [3, 6], TensorProto.FLOAT16)], [_vi("y", [3, 6], TensorProto.FLOAT16)],
               17, [s])
    x = (np.random.RandomState(1).randn(3, 6) * 100).astype(np.float16)
    want = _run(m, {"x": x})[0]
    lowering.lower(m, TARGETS["trt8.5"])
    ops = [n.op_type for n in m.graph.node]
    assert ops[0] == "Cast" and "LayerNormalization" not in ops
    np.testing.assert_allclose(_run(m, {"x": x})[0].astype(np.float32),
                               want.astype(np.float32), atol=2e-3)


@pytest.mark.parametrize("op,opset,attrs", [("Gelu", 20, {}), ("Gelu", 20, {"approximate": "tanh"}),
                                            ("Mish", 18, {})])
def test_newer_activations_lowered_to_opset_17(op, opset, attrs):
    m = _model([helper.make_node(op, ["x"], ["y"], name="act", **attrs)], [_vi("x", [4, 64])],
               [_vi("y", [4, 64])], opset)
    x = np.linspace(-6, 6, 256, dtype=np.float32).reshape(4, 64)
    want = _run(m, {"x": x})[0]
    notes = lowering.lower(m, TARGETS["trt8.5"])
    assert notes[0] == "graph converted from opset {} to 17".format(opset)
    assert op not in [n.op_type for n in m.graph.node]
    assert set(n.op_type for n in m.graph.node) <= TARGETS["trt8.5"].ops
    assert m.opset_import[0].version == 17
    onnx.checker.check_model(m, full_check=True)
    np.testing.assert_allclose(_run(m, {"x": x})[0], want, rtol=1e-5, atol=1e-6)


def test_opset_18_graph_converted_down_to_13():
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)  # noqa: E731
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=1),
        helper.make_node("Sub", ["x", "m"], ["c"]),
        helper.make_node("Split", ["c"], ["a", "b"], axis=1, num_outputs=2),
        helper.make_node("Concat", ["b", "a"], ["ba"], axis=1),
        helper.make_node("Reshape", ["ba", "shape"], ["r"], allowzero=0),
        helper.make_node("Resize", ["r", "", "", "sizes"], ["z"], mode="linear",
                         antialias=0, coordinate_transformation_mode="half_pixel"),
    ]
    inits = [i64("axes", [2, 3]), i64("shape", [1, 5, 6, 8]), i64("sizes", [1, 5, 12, 16])]
    m = _model(nodes, [_vi("x", [1, 5, 6, 8])], [_vi("z", [1, 5, 12, 16])], 18, inits)
    m.ir_version = 10
    x = np.random.RandomState(2).randn(1, 5, 6, 8).astype(np.float32)
    want = _run(m, {"x": x})[0]
    notes = lowering.lower(m, TARGETS["trt8.2"])
    assert notes == ["graph converted from opset 18 to 13"]
    assert m.opset_import[0].version == 13 and m.ir_version == 7
    onnx.checker.check_model(m, full_check=True)
    np.testing.assert_allclose(_run(m, {"x": x})[0], want, rtol=1e-6, atol=1e-6)


def test_op_without_an_older_form_is_refused_naming_the_node():
    sizes = numpy_helper.from_array(np.array([1, 3, 4, 4], np.int64), "sizes")
    m = _model([helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="down_aa",
                                 mode="linear", antialias=1)],
               [_vi("x", [1, 3, 8, 8])], [_vi("y", [1, 3, 4, 4])], 18, [sizes])
    with pytest.raises(JetsegError, match=r"node 'down_aa' \(Resize antialias=1, mode=linear\) "
                                          r"needs ONNX opset 18; TensorRT 8.5.*at most 17"):
        lowering.lower(m, TARGETS["trt8.5"])


# ---- the dynamo exporter where TorchScript cannot trace -------------------------------
class Shuffled(nn.Module):
    """ShuffleNet-style block: nn.ChannelShuffle has no TorchScript ONNX symbolic."""

    def __init__(self, k=4):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, groups=1)
        self.shuffle = nn.ChannelShuffle(2)
        self.head = nn.Conv2d(8, k, 3, padding=1, groups=1)

    def forward(self, x):
        return self.head(torch.relu(self.shuffle(self.conv(x))))


@pytest.mark.skipif(not tracing.dynamo_available(), reason="torch.onnx dynamo exporter or "
                    "onnxscript not installed")
@pytest.mark.parametrize("target", ["trt8.2", "trt8.5"])
def test_dynamo_exporter_takes_over_where_torchscript_cannot(target, tmp_path, caplog, capfd):
    torch.manual_seed(0)
    net = Shuffled().eval()
    out = tmp_path / "s.onnx"
    caplog.set_level(logging.INFO, logger="jetseg")
    res = exporter.export_onnx(net, str(out), 4, width=64, height=48, target=target,
                               check_count=2)
    assert res.row("onnx fp32").agreement >= 0.999
    m = load(out)
    assert meta(m)["jetseg.exporter"] == "dynamo"
    assert m.opset_import[0].version == TARGETS[target].opset
    text = caplog.text
    assert "torchscript exporter cannot export the net" in text and "channel_shuffle" in text
    assert "exported with PyTorch's dynamo exporter" in text
    printed = capfd.readouterr()
    assert "graph(" not in printed.out + printed.err      # TorchScript's dump kept off


def test_no_exporter_can_is_one_error_naming_both(tmp_path):
    class Erfinv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return torch.erfinv(torch.tanh(self.conv(x)) * 0.9)

    with pytest.raises(JetsegError) as e:
        exporter.export_onnx(Erfinv().eval(), str(tmp_path / "e.onnx"), 3, width=32, height=32,
                             check_count=1)
    text = str(e.value)
    assert "torchscript exporter: Exporting the operator 'aten::erfinv'" in text
    assert "dynamo exporter" in text and "\n" not in text
    assert not (tmp_path / "e.onnx").exists()


# ---- output conventions ----------------------------------------------------------------
class Head(nn.Module):
    def __init__(self, k=3, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(3, k, 3, stride=stride, padding=1)

    def forward(self, x):
        return self.conv(x)


class Out(object):
    """Not a dict: like a library's output object with a .logits attribute."""

    def __init__(self, logits):
        self.logits, self.loss = logits, None


class Wrapper(nn.Module):
    def __init__(self, kind, k=3, stride=1):
        super().__init__()
        self.head, self.aux, self.kind = Head(k, stride), Head(k, stride), kind

    def forward(self, x):
        y = self.head(x)
        if self.kind == "dict":
            return {"aux": self.aux(x), "out": y}
        if self.kind == "dict-other":
            return {"seg": y, "edges": x[:, :1]}
        if self.kind == "tuple":
            return y, self.aux(x)
        if self.kind == "object":
            return Out(y)
        return y


@pytest.mark.parametrize("kind,path,note", [
    ("dict", [("key", "out")], "dropped: 'aux'"),
    ("dict-other", [("key", "seg")], "dropped: 'edges'"),
    ("tuple", [("index", 0)], "took output [0] of 2 as the main head; dropped [1, 3, 24, 32]"),
    ("object", [("attr", "logits")], "scores from output.logits"),
    ("tensor", [], None)])
def test_output_conventions(kind, path, note):
    net = Wrapper(kind).eval()
    mod, notes = conventions.logits_module(net, 32, 24, 3)
    assert mod.path == path
    if note:
        assert any(note in n for n in notes), notes
    x = torch.randn(1, 3, 24, 32)
    torch.testing.assert_close(mod(x), net.head(x))


def test_low_resolution_logits_upsampled_in_the_graph(tmp_path, caplog):
    torch.manual_seed(0)
    net = Wrapper("object", k=3, stride=4).eval()
    caplog.set_level(logging.INFO, logger="jetseg")
    out = tmp_path / "lr.onnx"
    res = exporter.export_onnx(net, str(out), 3, width=64, height=48, check_count=2)
    assert res.row("onnx fp32").agreement >= 0.999
    assert "logits at 1/4 of the input (16x12 for 64x48): upsampled bilinearly" in caplog.text
    m = load(out)
    assert [o for o in m.graph.output if o.name == "classes"][0].type.tensor_type.shape.dim[
        1].dim_value == 48


class Returns(nn.Module):
    def __init__(self, what):
        super().__init__()
        self.conv, self.what = nn.Conv2d(3, 5, 3, padding=1), what

    def forward(self, x):
        y = self.conv(x)
        if self.what == "vector":
            return y.mean((2, 3))
        if self.what == "argmax":
            return y.argmax(1)
        if self.what == "pooled":
            return F.adaptive_avg_pool2d(y, 7)
        if self.what == "nhwc":
            return y.permute(0, 2, 3, 1)
        if self.what == "dict":
            return {"a": y, "b": y * 2}
        if self.what == "size":
            if x.shape[2] % 32 or x.shape[3] % 32 or x.shape[2] < 64:
                raise ValueError("height and width must be multiples of 32, height >= 64")
            return y
        return y


@pytest.mark.parametrize("what,message", [
    ("vector", "returns [1, 5]: one score vector for the whole image (a classifier)"),
    ("argmax", "returns [1, 48, 64] int64: a class map already argmax-ed"),
    ("pooled", "returns [1, 5, 7, 7] for a 64x48 input: not a per-pixel score map"),
    ("nhwc", "returns [1, 48, 64, 5]: channels last"),
    ("dict", "a dict with keys ['a', 'b'] and none is 'out' or 'logits'"),
])
def test_not_class_scores_is_refused(what, message):
    with pytest.raises(JetsegError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        conventions.logits_module(Returns(what).eval(), 64, 48, 5)


def test_size_refusal_names_the_nearest_and_smallest_size():
    with pytest.raises(JetsegError) as e:
        conventions.logits_module(Returns("size").eval(), 100, 40, 5)
    assert "cannot take 100x40 (height and width must be multiples of 32" in str(e.value)
    assert "nearest size it takes is 128x64, the smallest 32x64" in str(e.value)
    assert e.value.fix == "use --input-size 128x64"


# ---- bad input through the command line: one line, exit 2 ----------------------------
USER = '''
import torch

class Classifier(torch.nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, num_classes, 3, padding=1)

    def forward(self, x):
        return self.conv(x).mean((2, 3))

class Strided(torch.nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, num_classes, 3, padding=1)

    def forward(self, x):
        if x.shape[2] % 32 or x.shape[3] % 32:
            raise RuntimeError("Wrong input shape: expected a multiple of 32")
        return self.conv(x)

def needs_encoder(num_classes, encoder, depth=5):
    return Strided(num_classes)

def broken(num_classes):
    raise ValueError("unknown encoder 'resnet1000'")
'''


@pytest.fixture
def user_files(tmp_path, monkeypatch):
    (tmp_path / "nets.py").write_text(textwrap.dedent(USER))
    (tmp_path / "typo.py").write_text("import torch\ndef build(num_classes):\n    return (\n")
    (tmp_path / "needs_dep.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("module,extra,message", [
    ("nets.py:Classifier", [], "one score vector for the whole image"),
    ("nets.py:Strided", ["--input-size", "100x75"],
     "the net cannot take 100x75 (Wrong input shape: expected a multiple of 32); the nearest "
     "size it takes is 128x96, the smallest 32x32 (fix: use --input-size 128x96)"),
    ("nets.py:needs_encoder", [], "needs argument(s) encoder that jetseg cannot give"),
    ("nets.py:broken", [], "broken(num_classes=3) raised ValueError: unknown encoder"),
    ("typo.py:build", [], "importing 'typo.py' raised SyntaxError (line 3)"),
    ("needs_dep.py:build", [], "cannot import 'needs_dep.py' (No module named "
                               "'no_such_dependency_xyz')"),
])
def test_cli_bad_input_is_one_line(module, extra, message, user_files, capsys):
    rc = export_main(["--module", module, "--num-classes", "3", "-o", "x.onnx",
                      "--check-count", "1"] + (extra or ["--input-size", "64x48"]))
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert rc == 2, err
    assert last.startswith("jetseg: error: ") and message in last, err
    assert "Traceback" not in err and not (user_files / "x.onnx").exists()
