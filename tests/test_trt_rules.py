"""The ONNX-TensorRT parser rules (jetseg_export/trt_rules.py), one small graph per rule.

Each rule: a graph that breaks it is reported for the release whose parser source says so,
naming the node, and ``refuse`` turns that into the one-line JetsegError the export prints;
the same graph (or its fixed form) passes where the rule does not hold.
"""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto as TP, helper as h, numpy_helper  # noqa: E402

from jetseg.errors import JetsegError  # noqa: E402
from jetseg_export import trt_rules  # noqa: E402
from jetseg_export.targets import TARGETS, check_target  # noqa: E402
from jetseg_export.trt_rules import RULES, check_graph, refuse  # noqa: E402

F, H, BF, I32, I64, U8 = TP.FLOAT, TP.FLOAT16, TP.BFLOAT16, TP.INT32, TP.INT64, TP.UINT8


def model(nodes, inputs, outputs, opset=13, inits=()):
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                     [h.make_tensor_value_info(n, t, s) for n, t, s in outputs],
                     initializer=list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def unary(op, dtype=F, opset=13, out_dtype=None, **attrs):
    return model([h.make_node(op, ["x"], ["y"], name="n0", **attrs)], [("x", dtype, [1, 4])],
                 [("y", out_dtype or dtype, [1, 4])], opset)


def cast(src, to):
    return unary("Cast", src, out_dtype=to, to=to)


def uint8_inside():
    return model([h.make_node("Cast", ["x"], ["u"], to=U8, name="to_u8"),
                  h.make_node("Cast", ["u"], ["y"], to=F, name="from_u8")],
                 [("x", F, [1, 4])], [("y", F, [1, 4])])


def resize(mode="nearest", ctm="half_pixel", nearest="round_prefer_floor", opset=13,
           scales_init=True, dtype=F):
    sc = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    inputs = [("x", dtype, [1, 1, 4, 4])] + ([] if scales_init else [("scales", F, [4])])
    node = h.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode, name="rs0",
                       coordinate_transformation_mode=ctm, nearest_mode=nearest)
    return model([node], inputs, [("y", dtype, [1, 1, 8, 8])], opset,
                 [sc] if scales_init else [])


def argmax(dtype=F):
    return model([h.make_node("ArgMax", ["x"], ["y"], axis=1, keepdims=0, name="am0")],
                 [("x", dtype, [1, 3, 4])], [("y", I64, [1, 4])])


def topk(k_init=True, dtype=F):
    k = numpy_helper.from_array(np.array([2], np.int64), "k")
    return model([h.make_node("TopK", ["x", "k"], ["v", "i"], name="tk0")],
                 [("x", dtype, [1, 8])] + ([] if k_init else [("k", I64, [1])]),
                 [("v", dtype, [1, 2]), ("i", I64, [1, 2])], 13, [k] if k_init else [])


def qdq(zero_point):
    s = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    z = numpy_helper.from_array(np.array(zero_point, np.int8), "z")
    return model([h.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q0"),
                  h.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq0")],
                 [("x", F, [1, 4])], [("y", F, [1, 4])], 13, [s, z])


# rule -> (graph that breaks it, release that refuses it, what the refusal names,
#          graph that keeps it or None, release that takes it)
CASES = {
    "max_opset": (unary("Relu", opset=14), "8.2", "the graph", unary("Relu", opset=13), "8.2"),
    "min_opset": (unary("Relu", opset=8), "10.3", "the graph", unary("Relu", opset=8), "8.6"),
    "op_types": (unary("Hardmax"), "8.6", "node 'n0' (Hardmax)", None, "10.3"),
    "op_types/dtype": (unary("Relu", I32), "8.6", "node 'n0' (Relu)", None, "10.10"),
    "importable_dtypes": (unary("Identity", BF), "8.5", "tensor 'x'", None, "10.3"),
    "uint8_io": (cast(U8, F), "8.4", "tensor 'x'", None, "8.5"),
    "uint8_intermediate": (uint8_inside(), "8.6", "node 'to_u8' (Cast)", cast(F, U8), "8.6"),
    "cast_to_uint8_from": (cast(I32, U8), "8.5", "node 'n0' (Cast)", cast(H, U8), "8.5"),
    "cast_from_uint8_to": (cast(U8, I32), "10.3", "node 'n0' (Cast)", cast(U8, H), "10.3"),
    "resize_modes": (resize("cubic"), "8.4", "node 'rs0' (Resize)", None, "8.5"),
    "resize_coord_modes": (resize(ctm="half_pixel_symmetric", opset=19), "10.3",
                           "node 'rs0' (Resize)", resize(ctm="pytorch_half_pixel", opset=19),
                           "10.3"),
    "resize_nearest_modes": (resize(nearest="banker"), "8.6", "node 'rs0' (Resize)",
                             resize(nearest="floor"), "8.6"),
    "resize_tfhp_nn_needs_round_prefer_floor": (
        resize(ctm="tf_half_pixel_for_nn", nearest="floor"), "8.6", "node 'rs0' (Resize)",
        None, "10.3"),
    "resize_bad_input": (resize(dtype=U8), "8.5", "node 'rs0' (Resize)", resize(), "8.5"),
    "resize_scales_initializer": (resize(scales_init=False), "8.2", "node 'rs0' (Resize)",
                                  None, "8.4"),
    "argmax_bad_input": (argmax(I32), "8.5", "node 'am0' (ArgMax)", None, "8.6"),
    "topk_bad_input": (topk(dtype=U8), "10.10", "node 'tk0' (TopK)", topk(dtype=F), "10.10"),
    "topk_k_initializer": (topk(k_init=False), "8.5", "node 'tk0' (TopK)", None, "8.6"),
    "qdq_zero_point_zero": (qdq(3), "8.2", "node 'q0' (QuantizeLinear)", qdq(0), "8.2"),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_refuses_naming_the_node(rule):
    bad, release, where, good, ok_release = CASES[rule]
    found = check_graph(bad, release)
    assert found, (rule, release)
    with pytest.raises(JetsegError) as e:
        refuse(bad, [release], source="m.onnx")
    text = str(e.value)
    assert text.startswith("m.onnx: " + where + ": "), text
    assert "TensorRT " + release in text and "(fix: " in text and "\n" not in text
    assert check_graph(good if good is not None else bad, ok_release) == []


def test_every_checked_rule_has_a_case():
    facts = {"op_types", "dtype_aliases", "argmax_dtype"}   # data the checks read
    assert set(RULES["8.2"]) - facts <= set(k.split("/")[0] for k in CASES)
    for release, r in RULES.items():
        assert set(r) == set(RULES["8.2"]), release


def test_cast_to_uint8_is_refused_from_ints_on_every_release_with_uint8():
    # 8.5: the Cast importer's assert; 8.6 to 11.1: NvInferRuntimeBase.h kUINT8 note
    for release in ("8.5", "8.6", "10.3", "10.10", "10.16", "11.1"):
        for src in (I32, I64, TP.INT8, TP.BOOL):
            found = check_graph(cast(src, U8), release)
            assert [f.node for f in found if "to UINT8" in f.problem] == ["n0"], (release, src)
        assert check_graph(cast(F, U8), release) == []
        assert check_graph(cast(H, U8), release) == []
    # 8.x imports INT64 as INT32: the message says what the engine sees
    assert "INT64 (INT32 in the engine)" in check_graph(cast(I64, U8), "8.5")[0].problem
    # before 8.5 there is no UINT8 at all
    assert [f.node for f in check_graph(cast(F, U8), "8.4")] == ["y", "n0"]


def test_argmax_and_topk_refuse_uint8_input_through_10_10():
    # 10.10's importerUtils.cpp argMinMaxHelper and TopK still call checkNotInvalidType {"UINT8"}
    for release in ("8.5", "8.6", "10.3", "10.10"):
        assert "am0" in [f.node for f in check_graph(argmax(U8), release)], release
    assert check_graph(argmax(F), "10.10") == []


def test_ops_newer_than_a_release():
    ln_scale = numpy_helper.from_array(np.ones(4, np.float32), "s")
    ln = model([h.make_node("LayerNormalization", ["x", "s"], ["y"], name="ln0")],
               [("x", F, [1, 4])], [("y", F, [1, 4])], 17, [ln_scale])
    assert [f.node for f in check_graph(ln, "8.5")] == ["ln0"]
    assert check_graph(ln, "8.6") == []
    swish = unary("Swish", opset=24)
    assert [f.node for f in check_graph(swish, "10.16")] == ["n0"]
    assert check_graph(swish, "11.1") == []


def test_accepts_a_path(tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(unary("Relu", opset=14), str(p))
    assert [f.node for f in check_graph(str(p), "8.2")] == ["graph"]


# ---- targets: which releases each serves, one checker ----------------------------------
def test_targets_cover_every_jetpack_line():
    releases = dict((name, t.releases) for name, t in TARGETS.items())
    assert releases == {"trt8.2": ("8.2", "8.4"), "trt8.5": ("8.5",), "trt8.6": ("8.6",),
                        "trt10": ("10.3",), "trt11": ("11.1",), "onnxruntime": ()}
    for name, t in TARGETS.items():
        for r in t.releases:
            assert t.opset <= RULES[r]["max_opset"], (name, r)
            assert (t.input_dtype == "uint8") == RULES[r]["uint8_io"], (name, r)


def test_uint8_class_map_goes_through_float_where_the_rules_say():
    assert TARGETS["onnxruntime"].classes_cast_via("uint8") is None
    for name in ("trt8.5", "trt8.6", "trt10", "trt11"):
        assert TARGETS[name].classes_cast_via("uint8") == "float32", name
        assert TARGETS[name].classes_cast_via("int32") is None, name


def test_check_target_runs_the_parser_rules():
    m = model([h.make_node("Cast", ["image"], ["f"], to=F),
               h.make_node("ArgMax", ["f"], ["ids"], axis=3, keepdims=0, name="am"),
               h.make_node("Cast", ["ids"], ["classes"], to=U8, name="to_classes")],
              [("image", U8, [1, 4, 4, 3])], [("classes", U8, [1, 4, 4])], 17)
    with pytest.raises(JetsegError, match="node 'to_classes' \\(Cast\\): Cast INT64 \\(INT32 "
                                          "in the engine\\) to UINT8: TensorRT 8.5"):
        check_target(m, "trt8.5")
    with pytest.raises(JetsegError, match="node 'to_classes' \\(Cast\\).*TensorRT 10.3"):
        check_target(m, "trt10")
    check_target(m, "onnxruntime")


def test_rules_table_has_every_release():
    rows = trt_rules.table()
    assert [r["release"] for r in rows] == ["8.2", "8.4", "8.5", "8.6", "10.3", "10.10", "10.16",
                                            "11.1"]
