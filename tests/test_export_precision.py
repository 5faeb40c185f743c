"""INT8 (Q/DQ from calibration frames) and FP16 exports: the graph TensorRT wants, run on
ONNX Runtime, agreement with FP32 reported."""
import os

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")
pytest.importorskip("torchvision")

from onnx import TensorProto, numpy_helper  # noqa: E402

from jetseg.core.segmenter import Segmenter  # noqa: E402
from jetseg.errors import JetsegError  # noqa: E402
from jetseg_export import exporter, parity  # noqa: E402
from jetseg_export.cli import main as export_main  # noqa: E402
from jetseg_export.quantize import QUANT_OPS  # noqa: E402
from jetseg_export.targets import check_target  # noqa: E402

from tests.helpers.exportnets import (CAMVID, frame_at, make_net, meta, torch_classes,  # noqa: E402,F401
                                     user_pkg)


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    """CamVid training frames when present, else a folder of structured random frames."""
    if os.path.isdir(os.path.join(CAMVID, "train")):
        return os.path.join(CAMVID, "train")
    import cv2
    d = tmp_path_factory.mktemp("calib")
    for i, f in enumerate(parity.random_frames(8, 96, 72, seed=10)):
        cv2.imwrite(str(d / "f{:02d}.png".format(i)), f)
    return str(d)


@pytest.fixture(scope="module")
def int8_export(calib_dir, tmp_path_factory):
    net = make_net("fcn-resnet18", 6, seed=2)
    out = tmp_path_factory.mktemp("int8") / "m.int8.onnx"
    check = os.path.join(CAMVID, "val") if os.path.isdir(os.path.join(CAMVID, "val")) else None
    res = exporter.export_onnx(net, str(out), 6, width=96, height=72, target="trt8.2",
                               precision="int8", calib=calib_dir, calib_count=8,
                               check_images=check, check_count=3)
    return net, out, res


def test_int8_graph_is_tensorrt_explicit_quantization(int8_export):
    _, out, _ = int8_export
    m = onnx.load(str(out))
    check_target(m, "trt8.2")                  # symmetric INT8, zero points 0, TRT 8.2 ops
    g = m.graph
    inits = dict((i.name, i) for i in g.initializer)
    producers = dict((o, n) for n in g.node for o in n.output)
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    q = [n for n in g.node if n.op_type == "QuantizeLinear"]
    dq = [n for n in g.node if n.op_type == "DequantizeLinear"]
    assert q and dq
    for n in q + dq:                           # INT8, zero point 0 (symmetric)
        zp = inits[n.input[2]]
        assert zp.data_type == TensorProto.INT8 and not numpy_helper.to_array(zp).any()
    weighted = [n for n in g.node if n.op_type in ("Conv", "ConvTranspose")]
    assert weighted
    for n in weighted:
        w = producers[n.input[1]]
        assert w.op_type == "DequantizeLinear"           # weights: INT8 constants + DQ
        assert inits[w.input[0]].data_type == TensorProto.INT8
        axis = [a.i for a in w.attribute if a.name == "axis"]
        channels = inits[w.input[0]].dims[0 if n.op_type == "Conv" else 1]
        assert axis == [0 if n.op_type == "Conv" else 1]
        assert numpy_helper.to_array(inits[w.input[1]]).size == channels  # per channel
        assert producers[n.input[0]].op_type == "DequantizeLinear"        # activations
        if len(n.input) > 2:                                              # bias float
            assert n.input[2] in inits and inits[n.input[2]].data_type == TensorProto.FLOAT
    for n in dq:       # Q/DQ only where TensorRT fuses it (a residual Add may share one)
        ops = [c.op_type for c in consumers.get(n.output[0], [])]
        assert any(op in QUANT_OPS for op in ops), ops
    for n in q:                                # Q -> DQ pairs, nothing else
        assert [c.op_type for c in consumers[n.output[0]]] == ["DequantizeLinear"]
    # only the network is quantized: pre/post-processing stays float and exact
    pre_post = [n for n in g.node if any(t.startswith("jetseg_") for t in n.output)]
    assert pre_post and not any(producers.get(i) in dq for n in pre_post for i in n.input)
    assert meta(m)["jetseg.precision"] == "int8"


def test_int8_runs_on_onnxruntime_with_agreement_reported(int8_export):
    net, out, res = int8_export
    fp32, int8 = res.row("onnx fp32"), res.row("onnx int8")
    assert fp32.agreement >= 0.999
    assert "onnx int8" in res.table
    assert 0.85 <= int8.agreement <= 1.0     # INT8 is close, not exact
    assert meta(onnx.load(str(out)))["jetseg.parity"]["agreement"]["int8"] == \
        pytest.approx(int8.agreement, abs=1e-5)
    frame = frame_at(96, 72, seed=4)
    got = Segmenter(str(out)).process(frame).classes
    assert (got == torch_classes(net, frame)).mean() >= 0.85


def test_fp16_export(tmp_path):
    net = make_net("lraspp-mobilenet", 4)
    out = tmp_path / "m.fp16.onnx"
    res = exporter.export_onnx(net, str(out), 4, width=64, height=48, precision="fp16",
                               check_count=2)
    m = onnx.load(str(out))
    types = [i.data_type for i in m.graph.initializer]
    assert types.count(TensorProto.FLOAT16) > 10
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    w = dict((i.name, i.data_type) for i in m.graph.initializer)
    assert all(w[n.input[1]] == TensorProto.FLOAT16 for n in convs)
    assert m.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
    assert meta(m)["jetseg.precision"] == "fp16"
    assert res.row("onnx fp16").agreement >= 0.99
    assert res.row("onnx fp16").max_err < 1e-2
    frame = frame_at(64, 48)
    got = Segmenter(str(out)).process(frame).classes
    assert (got == torch_classes(net, frame)).mean() >= 0.99


@pytest.mark.parametrize("target", ["trt10", "trt11"])
def test_fp16_net_computes_in_float16_for_strongly_typed_tensorrt(target, tmp_path):
    """D5: strongly typed TensorRT (10.x STRONGLY_TYPED, 11 always) builds each layer in the
    type the ONNX gives it, so an FP16 engine needs float16 weights and tensors in the graph.
    Only jetseg's pre/post-processing (normalise, upsample, argmax, overlay) stays float32."""
    net = make_net("deeplabv3-mobilenet", 5)
    out = tmp_path / "m.fp16.onnx"
    res = exporter.export_onnx(net, str(out), 5, width=64, height=48, precision="fp16",
                               target=target, check_count=2)
    m = onnx.load(str(out))
    check_target(m, target)                    # its parser rules, and onnx's strict checks
    inferred = onnx.shape_inference.infer_shapes(m)
    g = inferred.graph
    types = dict((v.name, v.type.tensor_type.elem_type)
                 for v in list(g.input) + list(g.value_info) + list(g.output))
    types.update((i.name, i.data_type) for i in g.initializer)
    float_weights = [i.name for i in g.initializer if i.data_type == TensorProto.FLOAT
                     and not i.name.startswith("jetseg_")]
    assert float_weights == []
    net_nodes = [n for n in g.node if not any(o.startswith("jetseg_") or o in ("classes",
                 "overlay", "confidence") for o in n.output)]
    fp32 = [(n.op_type, n.output[0]) for n in net_nodes
            if types.get(n.output[0]) == TensorProto.FLOAT]
    # the normalisation's last Add writes the net's input; one Cast brings the logits back
    assert sorted(fp32) == [("Add", "input"), ("Cast", "logits")]
    heavy = [n for n in net_nodes if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm")]
    assert heavy and all(types[n.output[0]] == TensorProto.FLOAT16 for n in heavy)
    assert all(types[n.input[1]] == TensorProto.FLOAT16 for n in heavy)
    assert meta(m)["jetseg.precision"] == "fp16"
    assert m.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
    assert dict((o.name, o.type.tensor_type.elem_type) for o in m.graph.output)["classes"] == \
        TensorProto.UINT8
    assert res.row("onnx fp16").agreement >= 0.99


def test_fp16_that_overflows_is_refused_and_nothing_written(tmp_path):
    class Loud(torch.nn.Module):
        """Fine in float32; in float16 its 1e6-scale activations overflow (max 65504)."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.up = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.down = torch.nn.Conv2d(8, 3, 1)
            self.up.weight.data *= 1e6
            self.down.weight.data *= 1e-6

        def forward(self, x):
            return self.down(torch.relu(self.up(x)))

    out = tmp_path / "loud.fp16.onnx"
    with pytest.raises(JetsegError, match="FP16 graph agrees with PyTorch on only.*"
                                          "--precision fp32"):
        exporter.export_onnx(Loud().eval(), str(out), 3, width=32, height=24,
                             precision="fp16", check_count=2)
    assert not out.exists()
    exporter.export_onnx(Loud().eval(), str(out), 3, width=32, height=24, check_count=2)


def test_fp16_activations_that_overflow_are_caught_though_the_weights_fit(tmp_path):
    """Every weight fits float16, but the activations between the convolutions pass its
    65504 limit. ONNX Runtime's CPU would compute the convolutions in float32 and hide that;
    the check rounds each float16 tensor as a GPU keeps it, so the export is refused."""
    class Hot(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.b = torch.nn.Conv2d(8, 8, 3, padding=1)
            self.down = torch.nn.Conv2d(8, 3, 1)
            self.a.weight.data *= 300.0
            self.b.weight.data *= 300.0
            self.down.weight.data *= 1e-3

        def forward(self, x):
            return self.down(torch.relu(self.b(torch.relu(self.a(x)))))

    net = Hot().eval()
    with torch.no_grad():
        peak = float(net.b(torch.relu(net.a(torch.randn(1, 3, 24, 32) * 2))).abs().max())
    assert peak > 65504.0                            # the premise: float16 cannot hold it
    half = net.b.weight.data.abs().max().item()
    assert half < 65504.0 and net.down.weight.data.abs().min().item() > 6e-8
    out = tmp_path / "hot.fp16.onnx"
    with pytest.raises(JetsegError, match="FP16 graph agrees with PyTorch on only"):
        exporter.export_onnx(net, str(out), 3, width=32, height=24, precision="fp16",
                             check_count=2)
    assert not out.exists()


def test_cli_int8_with_calibration_folder(user_pkg, calib_dir, capsys):
    rc = export_main(["--module", "mypkg.models:build", "--num-classes", "3", "--input-size",
                      "48x32", "--precision", "int8", "--calib", calib_dir, "--calib-count", "4",
                      "--target", "trt10", "--check-count", "2", "-o", "m.int8.onnx"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "onnx fp32" in out.out and "onnx int8" in out.out
    assert "calibration" in out.err            # the progress bars went to stderr
    m = onnx.load(str(user_pkg / "m.int8.onnx"))
    check_target(m, "trt10")
    assert sum(n.op_type == "DequantizeLinear" for n in m.graph.node) >= 2
