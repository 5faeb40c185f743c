"""jetseg_export.upgrade: an older export's direct ArgMax -> uint8 cast (which TensorRT 8.5+
cannot build) routed through float, with identical outputs; the net's logits exposed as the
scores output exactly as compose writes it (other outputs bit-identical) or refused in one
line; an FP16 copy of an fp32 export behind the export's 99 % gate, measured with float16
activations; the shipped models pass every TensorRT target's parser rules."""
import json
import re

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


@pytest.mark.parametrize("name", ["camvid.onnx", "camvid.int8.onnx", "camvid.fp16.onnx",
                                  "camvid-demo.onnx"])
@pytest.mark.parametrize("target", ["trt8.5", "trt8.6", "trt10", "trt11"])
def test_shipped_models_pass_every_tensorrt_targets_rules(name, target):
    check_target(onnx.load(str(ROOT / "engines" / name)), target)


def test_missing_model_is_one_line(tmp_path, capsys):
    assert upgrade_main([str(tmp_path / "none.onnx")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# ---- --scores: the net's logits exposed, as compose(scores=True) has them ---------------
def _outputs(model):
    return [(o.name, o.type.tensor_type.elem_type,
             [d.dim_value for d in o.type.tensor_type.shape.dim]) for o in model.graph.output]


def _meta(model, key):
    return [p.value for p in model.metadata_props if p.key == key]


@pytest.mark.parametrize("kw", [
    {},
    {"ignore_class": 2, "confidence": True},
    {"frame_size": (96, 72), "filter_mode": "smooth"},
    {"frame_size": (96, 72), "filter_mode": "linear", "ignore_class": 1},
], ids=["plain", "ignore+confidence", "frame-smooth", "frame-linear"])
def test_scores_exposed_as_compose_writes_them(tmp_path, capsys, kw):
    net = TinyNet(width=64, height=48, down=4, seed=3)
    old, new = tmp_path / "old.onnx", tmp_path / "new.onnx"
    onnx.save(compose(net.onnx(), NAMES5, COLORS5, **kw), str(old))
    want = compose(net.onnx(), NAMES5, COLORS5, scores=True, **kw)
    assert upgrade_main([str(old), "--scores", "-o", str(new)]) == 0
    assert "scores output: the net's logits 'output_0'" in capsys.readouterr().out
    got = onnx.load(str(new))
    assert _outputs(got) == _outputs(want)
    for key in ("jetseg.outputs", "jetseg.graph"):
        assert json.loads(_meta(got, key)[0]) == json.loads(_meta(want, key)[0])
    for target in ("trt8.5", "trt8.6", "trt10", "trt11"):
        check_target(got, target)
    frame = rng_frame(*(kw.get("frame_size") or (64, 48)))
    before = run(old, frame)
    after = dict(zip([o.name for o in got.graph.output], run(new, frame)))
    for o, a in zip(onnx.load(str(old)).graph.output, before):      # bit-identical
        np.testing.assert_array_equal(after[o.name], a)
    np.testing.assert_allclose(after["output_0"], run(_save(tmp_path, want), frame)[0])
    assert upgrade_main([str(new), "--scores"]) == 0            # once is enough
    assert "scores output: there already" in capsys.readouterr().out


def _save(tmp_path, model):
    onnx.save(model, str(tmp_path / "want.onnx"))
    return tmp_path / "want.onnx"


def test_scores_refused_in_one_line_where_the_structure_is_not_there(tmp_path, capsys):
    plain = tmp_path / "plain.onnx"
    TinyNet(width=64, height=48).save(plain)            # no jetseg graph around the net
    skewed = compose(TinyNet(width=64, height=48).onnx(), NAMES5, COLORS5)
    for n in skewed.graph.node:                         # a class map not taken over classes
        if n.op_type == "ArgMax":
            n.attribute[0].i = 2 if n.attribute[0].name == "axis" else n.attribute[0].i
    onnx.save(skewed, str(tmp_path / "skewed.onnx"))
    for path, why in ((plain, "no jetseg metadata"), (tmp_path / "skewed.onnx", "ArgMax")):
        data = path.read_bytes()
        assert upgrade_main([str(path), "--scores"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and why in err and "--scores" in err, err
        assert path.read_bytes() == data                # nothing written


# ---- --precision fp16 from an fp32 export ----------------------------------------------
def test_fp16_copy_of_an_fp32_export(tmp_path, capsys):
    from jetseg.backends.onnx_proto import graph_precision
    src, out = tmp_path / "net.onnx", tmp_path / "net.fp16.onnx"
    onnx.save(compose(TinyNet(width=64, height=48, seed=1).onnx(), NAMES5, COLORS5,
                      scores=True, ignore_class=4), str(src))
    assert upgrade_main([str(src), "--precision", "fp16", "-o", str(out)]) == 0
    assert re.search(r"fp16: agrees with the fp32 model on [\d.]+% of pixels \(4 random",
                     capsys.readouterr().out)
    half, full = onnx.load(str(out)), onnx.load(str(src))
    assert graph_precision(str(out)) == "fp16" and graph_precision(str(src)) == "fp32"
    assert json.loads(_meta(half, "jetseg.precision")[0]) == "fp16"
    parity = json.loads(_meta(half, "jetseg.parity")[0])
    assert parity["agreement"]["fp16"] >= 0.99 and "random" in parity["frames"]
    assert _outputs(half) == _outputs(full)
    assert not _meta(half, "jetseg.miou")               # no labels: no mIoU of this file
    outside = [n for n in full.graph.node if n.output[0].startswith("jetseg_")]
    assert all(n in half.graph.node for n in outside)   # the pre/post graph as it was
    for target in ("trt8.5", "trt8.6", "trt10", "trt11"):
        check_target(half, target)
    frame = rng_frame(64, 48, seed=5)
    a, b = run(src, frame), run(out, frame)
    assert (a[1] == b[1]).mean() > 0.97                 # classes
    assert upgrade_main([str(out), "--precision", "fp16", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "the model is fp16" in capsys.readouterr().err
    assert upgrade_main([str(src), "--precision", "fp16"]) == 2        # would replace it
    assert "-o" in capsys.readouterr().err


def test_fp16_gate_sees_what_onnx_runtime_hides(tmp_path, capsys):
    """Logits near 1000 that differ by hundredths: float16 (spacing 0.5 there) ties them.
    ONNX Runtime's CPU runs the fp16 graph's Conv in float32 and agrees anyway; the gate
    rounds activations as a GPU keeps them and refuses the file."""
    from jetseg_export.upgrade import emulate_fp16, to_fp16
    net = TinyNet(width=64, height=48, seed=1)
    net.w2 *= 1e-2
    net.b2[:] = 1000.0
    src, out = tmp_path / "net.onnx", tmp_path / "net.fp16.onnx"
    full = compose(net.onnx(), NAMES5, COLORS5, scores=True)
    onnx.save(full, str(src))
    half = to_fp16(full)
    frame = rng_frame(64, 48, seed=5)
    as_ort_runs_it = run(_save(tmp_path, half), frame)[1]
    emulated = run(_save(tmp_path, emulate_fp16(half)), frame)[1]
    reference = run(src, frame)[1]
    assert (as_ort_runs_it == reference).mean() > 0.99
    assert (emulated == reference).mean() < 0.5
    assert upgrade_main([str(src), "--precision", "fp16", "-o", str(out)]) == 2
    err = capsys.readouterr().err.splitlines()         # progress bars, then the one line
    assert "nothing written" in err[-1] and not any("Traceback" in e for e in err)
    assert not out.exists()
