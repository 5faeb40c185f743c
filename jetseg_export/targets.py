"""What each ``--target`` is, and the one check every export passes before it is written.

    target       TensorRT it serves (JetPack, L4T)            the graph
    trt8.2       8.2 (JetPack 4.6, R32.6/7: Nano) and         opset 13, float32 image in, no
                 8.4 (JetPack 5.0.x, R35.1)                   uint8 tensor, int32 class map
    trt8.5       8.5 (JetPack 5.1.x, R35.2+: Xavier, Orin)    opset 17, uint8 image in, uint8
                                                              class map out
    trt8.6       8.6 (JetPack 6.0, R36.3: 8.6.2)              as trt8.5
    trt10        10.3 (JetPack 6.1 / 6.2, R36.4: Orin)        as trt8.5
    trt11        11.x (desktop GPUs)                          as trt8.5
    onnxruntime  ONNX Runtime anywhere                        as trt8.5, any ONNX op

A TensorRT target is checked against the parser rules of each release it serves
(trt_rules.py, read from onnx-tensorrt's source of that release); trt8.2 serves two, so its
graphs keep to what both 8.2 and 8.4 take.
"""
from jetseg.errors import JetsegError

from . import trt_rules


class Target(object):
    def __init__(self, name, opset, input_dtype, classes_dtypes, releases, note):
        self.name = name
        self.opset = opset
        self.input_dtype = input_dtype
        self.classes_dtypes = classes_dtypes        # first = default
        self.releases = releases                    # TensorRT parser rules (trt_rules.RULES)
        self.note = note

    @property
    def classes_dtype(self):
        return self.classes_dtypes[0]

    @property
    def ops(self):
        """ONNX ops every release of the target takes; None: anything ONNX Runtime runs."""
        if not self.releases:
            return None
        return frozenset.intersection(*[trt_rules.ops(r) for r in self.releases])

    def classes_cast_via(self, classes_dtype):
        """The dtype the ArgMax result passes through on its way to ``classes_dtype``, or None.

        ArgMax gives INT64 in ONNX (INT32 in TensorRT 8.x engines, INT64 in 10.x) and TensorRT
        casts to UINT8 only from FLOAT or HALF: onnx-tensorrt 8.5-GA builtin_op_importers.cpp
        Cast asserts it, and NvInferRuntimeBase.h of 8.6 to 11.1 says kUINT8 conversions "are
        not supported for {kINT8, kINT32, kBOOL}" (trt_rules ``cast_to_uint8_from``). So a
        uint8 class map goes ArgMax -> Cast FLOAT -> Cast UINT8 wherever a release of the
        target forbids the direct cast; exact, as class ids are small integers. ONNX Runtime
        casts directly.
        """
        to = {"uint8": "UINT8", "int32": "INT32", "int64": "INT64", "float32": "FLOAT"}
        if all(trt_rules.cast_allowed(r, "INT64", to[classes_dtype]) for r in self.releases):
            return None
        return "float32"


TARGETS = {
    "trt8.2": Target("trt8.2", 13, "float32", ("int32", "float32"), ("8.2", "8.4"),
                     "TensorRT 8.2 (Jetson Nano, JetPack 4.6; also 8.4 of JetPack 5.0)"),
    "trt8.5": Target("trt8.5", 17, "uint8", ("uint8", "int32"), ("8.5",),
                     "TensorRT 8.5 (Xavier / Orin, JetPack 5.1)"),
    "trt8.6": Target("trt8.6", 17, "uint8", ("uint8", "int32"), ("8.6",),
                     "TensorRT 8.6 (Orin, JetPack 6.0)"),
    "trt10": Target("trt10", 17, "uint8", ("uint8", "int32"), ("10.3",),
                    "TensorRT 10.3 (Orin, JetPack 6.1 / 6.2)"),
    "trt11": Target("trt11", 17, "uint8", ("uint8", "int32"), ("11.1",),
                    "TensorRT 11"),
    "onnxruntime": Target("onnxruntime", 17, "uint8", ("uint8", "int32", "int64", "float32"),
                          (), "ONNX Runtime (CPU / CUDA)"),
}
DEFAULT = "trt8.5"


def get_target(name):
    if name not in TARGETS:
        raise JetsegError("unknown --target {!r}".format(name),
                          fix="use one of: " + ", ".join(TARGETS))
    return TARGETS[name]


def check_target(model, target, source="model"):
    """Raise JetsegError when ``model`` breaks a rule of ``target``; return the inferred model.

    onnx's checker and strict shape inference first, then jetseg's conventions for the
    target (opset, image and class map types), then the TensorRT parser rules of each release
    the target serves (trt_rules.py).
    """
    import onnx
    from onnx import TensorProto
    from .compose import _opset
    if isinstance(target, str):
        target = get_target(target)
    try:
        skel = skeleton(model)
        onnx.checker.check_model(skel)
        inferred = onnx.shape_inference.infer_shapes(skel, check_type=True, strict_mode=True)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise JetsegError("the exported graph fails onnx's checks: {}".format(first[:300]),
                          path=source, fix="report this with the --debug output")
    opset = _opset(model)
    if opset > target.opset:
        raise JetsegError("graph has opset {}; {} takes at most {}".format(
            opset, target.note, target.opset), path=source,
            fix="export with --target {}".format(target.name))
    g = inferred.graph
    weights = set(x.name for x in model.graph.initializer)
    inp = [i for i in model.graph.input if i.name not in weights]
    in_type = inp[0].type.tensor_type.elem_type if inp else None
    want = {"uint8": TensorProto.UINT8, "float32": TensorProto.FLOAT}[target.input_dtype]
    if in_type != want:
        raise JetsegError("image input is {}; {} wants {}".format(
            TensorProto.DataType.Name(in_type or 0).lower(), target.note, target.input_dtype),
            path=source, fix="export with --target {}".format(target.name))
    for out in g.output:
        if out.name == "classes":
            t = TensorProto.DataType.Name(out.type.tensor_type.elem_type).lower()
            t = {"float": "float32"}.get(t, t)
            if t not in target.classes_dtypes:
                raise JetsegError("class map is {}; {} takes {}".format(
                    t, target.note, " or ".join(target.classes_dtypes)), path=source,
                    fix="use --classes-dtype {}".format(target.classes_dtype))
    if target.releases:
        for node in g.node:
            if node.domain not in ("", "ai.onnx"):
                raise JetsegError("node {!r} is {}::{}, a custom op {} cannot run".format(
                    node.name or node.output[0], node.domain, node.op_type, target.note),
                    path=source, fix="replace that layer or use --target onnxruntime")
        trt_rules.refuse(model, target.releases, source=source, inferred=inferred)
    return inferred


def skeleton(model, limit=4096):
    """``model`` with its big initializers turned into typed graph inputs (no data).

    onnx's checker and shape inference then run on kilobytes instead of a serialised copy
    of every weight (seconds for VGG's 500 MB); the structure, types and shapes checked
    are the same. Small initializers (shapes, axes, zero points) keep their values.
    """
    from onnx import helper
    g = model.graph
    big = [i for i in g.initializer if _nbytes(i) > limit]
    if not big:
        return model
    names = set(i.name for i in big)
    graph = helper.make_graph(
        list(g.node), g.name,
        list(g.input) + [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims))
                         for i in big],
        list(g.output), [i for i in g.initializer if i.name not in names],
        value_info=list(g.value_info))
    skel = helper.make_model(graph, opset_imports=list(model.opset_import))
    skel.ir_version = model.ir_version
    skel.metadata_props.extend(model.metadata_props)
    return skel


def _nbytes(init):
    n = 1
    for d in init.dims:
        n *= d
    return n * 4


def decompose_hardswish(model):
    """HardSwish(x) -> x * HardSigmoid(x, alpha=1/6, beta=0.5), for TensorRT before 8.5."""
    from onnx import helper
    nodes = []
    changed = False
    for node in model.graph.node:
        if node.op_type == "HardSwish" and node.domain in ("", "ai.onnx"):
            hs = node.output[0] + "_hardsigmoid"
            nodes.append(helper.make_node("HardSigmoid", [node.input[0]], [hs],
                                          name=(node.name or hs) + "_sigmoid", alpha=1.0 / 6,
                                          beta=0.5))
            nodes.append(helper.make_node("Mul", [node.input[0], hs], list(node.output),
                                          name=(node.name or hs) + "_mul"))
            changed = True
        else:
            nodes.append(node)
    if changed:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return model
