"""What each ``--target`` can take, and checking a finished graph against it.

    trt8.2       Jetson Nano (JetPack 4.6): opset 13, float32 image in, no uint8 tensor
                 anywhere, HardSwish decomposed, class map int32 (or float32)
    trt8.5       Xavier (JetPack 5): opset 17, uint8 image in, uint8 class map out
    trt10        Orin (JetPack 6): as trt8.5
    onnxruntime  desktop / any ONNX Runtime: opset 17, uint8 in and out, any ONNX op

The operator lists follow onnx-tensorrt's docs/operators.md for each release.
"""
import onnx
from onnx import TensorProto

from jetseg.errors import JetsegError

from .compose import _opset

# onnx-tensorrt 8.2 / 8.4 support matrix ("Y" rows)
_TRT8 = set("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization
Cast Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum
DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten
Floor Gather GatherElements GatherND Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater
GreaterOrEqual GRU HardSigmoid Identity If ImageScaler InstanceNormalization IsNaN LeakyRelu
Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
Min Mul Neg NonMaxSuppression Not Or Pad ParametricSoftplus Pow PRelu QuantizeLinear
RandomUniform RandomUniformLike Range ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence
RNN Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Sigmoid Sign Sin Sinh
Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh
ThresholdedRelu Tile TopK Transpose Unsqueeze Upsample Where Xor
""".split())
# added by 8.5 and by 10.x (kept conservative: an op missing here is an error at export,
# not a surprise on the Jetson)
_TRT85 = _TRT8 | set("HardSwish Reciprocal".split())
_TRT10 = _TRT85 | set("LayerNormalization GroupNormalization Trilu Shrink GridSample OneHot "
                      "NonZero Mod RoiAlign IsInf Hardmax BitShift".split())


class Target(object):
    def __init__(self, name, opset, input_dtype, classes_dtypes, ops, no_uint8, note):
        self.name = name
        self.opset = opset
        self.input_dtype = input_dtype
        self.classes_dtypes = classes_dtypes        # first = default
        self.ops = ops                              # None: anything ONNX Runtime runs
        self.no_uint8 = no_uint8
        self.note = note

    @property
    def classes_dtype(self):
        return self.classes_dtypes[0]


TARGETS = {
    "trt8.2": Target("trt8.2", 13, "float32", ("int32", "float32"), _TRT8, True,
                     "TensorRT 8.2 (Jetson Nano, JetPack 4.6)"),
    "trt8.5": Target("trt8.5", 17, "uint8", ("uint8", "int32"), _TRT85, False,
                     "TensorRT 8.5 (Xavier, JetPack 5)"),
    "trt10": Target("trt10", 17, "uint8", ("uint8", "int32"), _TRT10, False,
                    "TensorRT 10 (Orin, JetPack 6)"),
    "onnxruntime": Target("onnxruntime", 17, "uint8", ("uint8", "int32", "int64", "float32"),
                          None, False, "ONNX Runtime (CPU / CUDA)"),
}


def get_target(name):
    if name not in TARGETS:
        raise JetsegError("unknown --target {!r}".format(name),
                          fix="use one of: " + ", ".join(TARGETS))
    return TARGETS[name]




def _elem_types(model):
    """{tensor name: elem_type} for every typed tensor of the (shape-inferred) graph."""
    g = model.graph
    types = {}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        types[init.name] = init.data_type
    for node in g.node:
        if node.op_type == "Cast":
            for a in node.attribute:
                if a.name == "to":
                    types[node.output[0]] = a.i
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    types[node.output[0]] = a.t.data_type
    return types


def check_target(model, target, source="model"):
    """Raise JetsegError when ``model`` breaks a rule of ``target``; return the inferred model.

    Runs onnx's checker and strict shape inference first.
    """
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
    if target.ops is not None:
        for node in g.node:
            if node.domain not in ("", "ai.onnx"):
                raise JetsegError("node {!r} is {}::{}, a custom op {} cannot run".format(
                    node.name or node.output[0], node.domain, node.op_type, target.note),
                    path=source, fix="replace that layer or use --target onnxruntime")
            if node.op_type not in target.ops:
                raise JetsegError("node {!r} ({}) is an op {} cannot take".format(
                    node.name or node.output[0], node.op_type, target.note), path=source,
                    fix="replace that layer in the model, or pick a newer --target")
            if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                _check_qdq(node, g, target, source)
    types = _elem_types(inferred)
    weights = set(x.name for x in model.graph.initializer)
    inp = [i for i in g.input if i.name not in weights]
    in_type = inp[0].type.tensor_type.elem_type if inp else None
    want = {"uint8": TensorProto.UINT8, "float32": TensorProto.FLOAT}[target.input_dtype]
    if in_type != want:
        raise JetsegError("image input is {}; {} wants {}".format(
            TensorProto.DataType.Name(in_type or 0).lower(), target.note, target.input_dtype),
            path=source, fix="export with --target {}".format(target.name))
    if target.no_uint8:
        for name, t in sorted(types.items()):
            if t == TensorProto.UINT8:
                producer = [n for n in g.node if name in n.output]
                raise JetsegError("tensor {!r}{} is uint8, which {} cannot take".format(
                    name, " (node {!r})".format(producer[0].name) if producer else "",
                    target.note), path=source,
                    fix="export with --target {}".format(target.name))
    for out in g.output:
        if out.name == "classes":
            t = TensorProto.DataType.Name(out.type.tensor_type.elem_type).lower()
            t = {"float": "float32"}.get(t, t)
            if t not in target.classes_dtypes:
                raise JetsegError("class map is {}; {} takes {}".format(
                    t, target.note, " or ".join(target.classes_dtypes)), path=source,
                    fix="use --classes-dtype {}".format(target.classes_dtype))
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


def _check_qdq(node, graph, target, source):
    """TensorRT's explicit quantization: INT8, zero point 0."""
    inits = dict((i.name, i) for i in graph.initializer)
    zp = node.input[2] if len(node.input) > 2 else None
    if not zp:
        return
    if zp not in inits:
        raise JetsegError("node {!r}: zero point is not a constant".format(node.name),
                          path=source, fix="quantize with jetseg export --precision int8")
    arr = onnx.numpy_helper.to_array(inits[zp])
    if inits[zp].data_type != TensorProto.INT8 or arr.any():
        raise JetsegError("node {!r}: {} needs symmetric INT8 (zero point 0, int8), it has {} "
                          "{}".format(node.name, target.note, arr.dtype, arr.ravel()[:4]),
                          path=source, fix="quantize with jetseg export --precision int8")


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
