"""What the ONNX-TensorRT parser of each TensorRT release takes, read from the parser's source.

Every ``jetseg export --target trt*`` graph is checked against the releases its target serves
(targets.py) before it is written; the first broken rule is a one-line refusal naming the
node, its op and the fix.

Sources (facts read, no code copied; onnx/onnx-tensorrt unless said otherwise):
  P8.2    branch 8.2-GA (f42daee): builtin_op_importers.cpp, onnx2trt_utils.cpp, ModelImporter.cpp
  P8.4    branch 8.4-GA (63d626b): the same files
  P8.5    branch 8.5-GA (fdeeaca): the same files
  P8.6    branch 8.6-GA (ee0b139): the same files
  P10.3   commit 62bdde2 (the parsers/onnx submodule of NVIDIA/TensorRT release/10.3):
          onnxOpImporters.cpp, importerUtils.cpp, ModelImporter.cpp
  P10.10  commit 3b9c961 ("10.10-GA Release"): the same files
  D10.16  commit 6bde659 (release/10.16 submodule): docs/operators.md only
  D11.1   commit 7c51a63 (release/11.1 submodule): docs/operators.md only
  H<v>    NVIDIA/TensorRT branch release/<v>: include/NvInferRuntimeCommon.h (8.2-8.5),
          NvInferRuntimeBase.h (8.6 on), NvInfer.h
The ops of each release, the dtypes each takes and the opset range come from its
docs/operators.md (trt_ops.py, generated). A rule set to None was not verified for that
release (10.16 and 11.1 importers) and is not checked.
"""
from collections import namedtuple

from .trt_ops import OPS, OPSET

FLOATS = frozenset(["FLOAT", "FLOAT16"])

RULES = {}

RULES["8.2"] = {
    # P8.2 docs/operators.md: "TensorRT 8.2 supports operators up to Opset 13"
    "max_opset": OPSET["8.2"][1],
    # P8.2 ModelImporter.cpp importModel: warns below opset 7
    "min_opset": 7,
    # P8.2 docs/operators.md: rows marked Y, with their "Supported Types"
    "op_types": OPS["8.2"],
    # P8.2 onnx2trt_utils.cpp convertDtype: INT64 -> kINT32, DOUBLE -> kFLOAT
    "dtype_aliases": {"INT64": "INT32", "DOUBLE": "FLOAT"},
    # P8.2 onnx2trt_utils.cpp convertDtype has no UINT8 case; H8.2 DataType ends at kBOOL = 4
    "importable_dtypes": frozenset(["FLOAT", "DOUBLE", "INT8", "FLOAT16", "BOOL", "INT32",
                                    "INT64"]),
    # P8.2 ModelImporter.cpp importInput / outputs: ASSERT(convertDtype(...)) fails for UINT8
    "uint8_io": False,
    "uint8_intermediate": False,        # follows from convertDtype (no UINT8 at all)
    # P8.2 builtin_op_importers.cpp Cast: convertDtype(to) fails for UINT8
    "cast_to_uint8_from": frozenset(),  # empty: from nothing
    "cast_from_uint8_to": frozenset(),
    # P8.2 builtin_op_importers.cpp Resize: mode == "nearest" ? kNEAREST : kLINEAR;
    # ASSERT(mode != "cubic")
    "resize_modes": frozenset(["nearest", "linear"]),
    # P8.2 builtin_op_importers.cpp Resize: ASSERT "TensorRT only supports half_pixel,
    # pytorch_half_pixel, tf_half_pixel_for_nn, asymmetric and align_corners transformation modes!"
    "resize_coord_modes": frozenset(["half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn",
                                     "asymmetric", "align_corners"]),
    # P8.2 builtin_op_importers.cpp Resize: the nearest_mode if/else chain
    "resize_nearest_modes": frozenset(["floor", "ceil", "round_prefer_floor", "round_prefer_ceil"]),
    # P8.2 builtin_op_importers.cpp Resize: ASSERT(tf_half_pixel_for_nn -> round_prefer_floor)
    "resize_tfhp_nn_needs_round_prefer_floor": True,
    # P8.2 builtin_op_importers.cpp Resize: ASSERT(type != kINT32 && type != kBOOL)
    "resize_bad_input": frozenset(["INT32", "INT64", "BOOL"]),
    # P8.2 builtin_op_importers.cpp Resize: ASSERT(scales.is_weights()) "Resize scales must be
    # an initializer!"
    "resize_scales_initializer": True,
    # P8.2 onnx2trt_utils.cpp argMinMaxHelper: indices kINT32
    "argmax_dtype": "INT32",
    # P8.2 onnx2trt_utils.cpp argMinMaxHelper: ASSERT(type != kINT32)
    "argmax_bad_input": frozenset(["INT32", "INT64"]),
    # P8.2 builtin_op_importers.cpp TopK: ASSERT(type != kINT32); ASSERT(inputs.at(1).is_weights())
    "topk_bad_input": frozenset(["INT32", "INT64"]),
    "topk_k_initializer": True,
    # P8.2 builtin_op_importers.cpp QuantDequantLinearHelper: ASSERT(shiftIsAllZeros(zeroPoint))
    # "TRT only supports symmetric quantization - zeroPt must be all zeros"
    "qdq_zero_point_zero": True,
}

RULES["8.4"] = dict(RULES["8.2"], **{
    "max_opset": OPSET["8.4"][1],       # P8.4 docs/operators.md: "up to Opset 17"
    "op_types": OPS["8.4"],
    # P8.4 onnx2trt_utils.cpp convertDtype: still no UINT8; H8.4 DataType ends at kBOOL = 4.
    # P8.4 builtin_op_importers.cpp Resize: scales may be a tensor ("if (scales.is_weights())")
    "resize_scales_initializer": False,
    # P8.4: argMinMaxHelper, TopK (assertIsWeights K) and QuantDequantLinearHelper as in 8.2
})

RULES["8.5"] = dict(RULES["8.4"], **{
    "max_opset": OPSET["8.5"][1],       # P8.5 docs/operators.md: "up to Opset 17"
    "op_types": OPS["8.5"],             # (LayerNormalization: N)
    # P8.5 onnx2trt_utils.cpp convertDtype: UINT8 -> kUINT8 added
    "importable_dtypes": frozenset(["FLOAT", "DOUBLE", "INT8", "UINT8", "FLOAT16", "BOOL",
                                    "INT32", "INT64"]),
    "uint8_io": True,                   # P8.5 ModelImporter.cpp: I/O through convertDtype
    # H8.5 NvInferRuntimeCommon.h kUINT8: IdentityLayer converts network-level inputs /
    # outputs; the 8.5 parser itself does not check intermediates
    "uint8_intermediate": False,
    # P8.5 builtin_op_importers.cpp Cast: "UINT8 type casting is only supported from FP types":
    # ASSERT(dtype == kFLOAT || dtype == kHALF) in both directions
    "cast_to_uint8_from": FLOATS,
    "cast_from_uint8_to": FLOATS,
    # P8.5 builtin_op_importers.cpp Resize: "cubic" -> kCUBIC, "linear" -> kLINEAR, else nearest
    "resize_modes": frozenset(["nearest", "linear", "cubic"]),
    # P8.5 builtin_op_importers.cpp Resize: notInvalidType(inputs.at(0), {"BOOL", "UINT8"})
    "resize_bad_input": frozenset(["BOOL", "UINT8"]),
    # P8.5 onnx2trt_utils.cpp argMinMaxHelper: notInvalidType {"INT32", "UINT8"}; indices kINT32
    "argmax_bad_input": frozenset(["INT32", "INT64", "UINT8"]),
    # P8.5 builtin_op_importers.cpp TopK: notInvalidType {"INT32", "UINT8"}; assertIsWeights(K)
    "topk_bad_input": frozenset(["INT32", "INT64", "UINT8"]),
})

RULES["8.6"] = dict(RULES["8.5"], **{
    "max_opset": OPSET["8.6"][1],       # P8.6 docs/operators.md: "up to Opset 17"
    "op_types": OPS["8.6"],             # (LayerNormalization: Y)
    # P8.6 ModelImporter.cpp parseGraph: "TensorRT does not support UINT8 types for
    # intermediate tensors!"
    "uint8_intermediate": False,
    # P8.6 builtin_op_importers.cpp Cast only calls addCast; H8.6 NvInferRuntimeBase.h kUINT8:
    # "kUINT8 conversions are only supported for {kFLOAT, kHALF}" / "not supported for
    # {kINT8, kINT32, kBOOL}" (so it parses, and the build fails)
    "cast_to_uint8_from": FLOATS,
    "cast_from_uint8_to": FLOATS,
    # P8.6 onnx2trt_utils.cpp argMinMaxHelper: notInvalidType {"UINT8"}, INT32 input cast to
    # FLOAT; indices kINT32
    "argmax_bad_input": frozenset(["UINT8"]),
    # P8.6 builtin_op_importers.cpp TopK: notInvalidType {"UINT8"}; K may be a tensor
    "topk_bad_input": frozenset(["UINT8"]),
    "topk_k_initializer": False,
    # P8.6 builtin_op_importers.cpp QuantDequantLinearHelper: "TensorRT only supports symmetric
    # quantization. The zero point ... must be all zeros."
})

RULES["10.3"] = dict(RULES["8.6"], **{
    "max_opset": OPSET["10.3"][1],      # P10.3 docs/operators.md: "opset 9 to opset 20"
    "min_opset": OPSET["10.3"][0],
    "op_types": OPS["10.3"],
    # P10.3 docs/operators.md note and importerUtils.cpp convertDtype: DOUBLE -> FLOAT, INT64 native
    "dtype_aliases": {"DOUBLE": "FLOAT"},
    "importable_dtypes": None,          # many (BF16, FP8, INT4 ...); not checked
    # P10.3 ModelImporter.cpp parseNode: legalUINT8 ("UINT8 types for intermediate tensors")
    "uint8_intermediate": False,
    # H10.3 NvInferRuntimeBase.h kUINT8: conversions only for {kFLOAT, kHALF}
    "cast_to_uint8_from": FLOATS,
    "cast_from_uint8_to": FLOATS,
    # P10.3 onnxOpImporters.cpp Resize: "Unsupported coordinate transformation mode" for the
    # rest (half_pixel_symmetric, tf_crop_and_resize); no tf_half_pixel_for_nn restriction
    "resize_tfhp_nn_needs_round_prefer_floor": False,
    # P10.3 onnxOpImporters.cpp Resize: notInvalidType(inputs.at(0), {"BOOL", "UINT8"})
    "resize_bad_input": frozenset(["BOOL", "UINT8"]),
    # P10.3 importerUtils.cpp argMinMaxHelper: notInvalidType {"UINT8"}; castHelper(indices, kINT64)
    "argmax_dtype": "INT64",
    "argmax_bad_input": frozenset(["UINT8"]),
    # P10.3 onnxOpImporters.cpp TopK: notInvalidType {"UINT8"}
    "topk_bad_input": frozenset(["UINT8"]),
    # P10.3 onnxOpImporters.cpp QuantDequantLinearHelper: "TensorRT only supports symmetric
    # quantization. The zero point ... must be all zeros."
})

RULES["10.10"] = dict(RULES["10.3"], **{
    "max_opset": OPSET["10.10"][1],     # P10.10 docs/operators.md: "opset 9 to opset 22"
    "op_types": OPS["10.10"],
    # P10.10 ModelImporter.cpp parseNode: legalUINT8 check, now skipped for Constant nodes
    "uint8_intermediate": False,
    # P10.10 importerUtils.cpp argMinMaxHelper: checkNotInvalidType {"UINT8"}; indices kINT64
    # P10.10 onnxOpImporters.cpp TopK: checkNotInvalidType {"UINT8"}
})

# 10.16 and 11.1: only docs/operators.md and the TensorRT headers were read
_DOCS_ONLY = {
    "argmax_dtype": None, "argmax_bad_input": None, "topk_bad_input": None,
    "topk_k_initializer": None, "resize_tfhp_nn_needs_round_prefer_floor": None,
    "resize_bad_input": None, "resize_scales_initializer": None,
    # D10.16 / D11.1 docs/operators.md Resize row: "Supported resize modes: `nearest`, `linear`"
    "resize_modes": frozenset(["nearest", "linear"]),
    # D10.16 / D11.1 docs/operators.md: "UINT8 is only supported as network input or output
    # tensor types."
    "uint8_io": True, "uint8_intermediate": False,
    # H10.16 / H11.1 NvInferRuntimeBase.h kUINT8: conversions only for {kFLOAT, kHALF}
    "cast_to_uint8_from": FLOATS, "cast_from_uint8_to": FLOATS,
    # D10.16 / D11.1 docs/operators.md DequantizeLinear: "`x_zero_point` must be zero",
    # QuantizeLinear: "`y_zero_point` must be 0"
    "qdq_zero_point_zero": True,
}
RULES["10.16"] = dict(RULES["10.10"], **_DOCS_ONLY)
RULES["10.16"].update(max_opset=OPSET["10.16"][1], op_types=OPS["10.16"])   # "opset 9 to 24"
RULES["11.1"] = dict(RULES["10.16"])
RULES["11.1"].update(max_opset=OPSET["11.1"][1], op_types=OPS["11.1"])      # adds Swish

# which input carries the dtype the docs' "Supported Types" column means (default: input 0)
_TYPE_INPUT = {"Where": 1, "Constant": None, "ConstantOfShape": None, "If": None, "Loop": None,
               "Scan": None, "Shape": None, "Size": None, "RandomNormal": None,
               "RandomUniform": None}

Finding = namedtuple("Finding", "node op problem fix")


def ops(release):
    """The ONNX ops TensorRT ``release``'s parser takes (docs/operators.md, rows marked Y)."""
    return frozenset(RULES[release]["op_types"])


def cast_allowed(release, src, to):
    """Whether TensorRT ``release`` takes Cast from ONNX dtype ``src`` to ``to`` (UINT8 rules)."""
    r = RULES[release]
    src = r["dtype_aliases"].get(src, src)
    if to == "UINT8" and r["cast_to_uint8_from"] is not None:
        return src in r["cast_to_uint8_from"]
    if src == "UINT8" and r["cast_from_uint8_to"] is not None:
        return to in r["cast_from_uint8_to"]
    return True


def _attr(node, name, default):
    import onnx.helper
    for a in node.attribute:
        if a.name == name:
            v = onnx.helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _dtypes(model, inferred):
    """{tensor name: ONNX dtype name} from the declared and inferred types."""
    import onnx
    names = {v: k for k, v in onnx.TensorProto.DataType.items()}
    out = {}
    for g in (model.graph, inferred.graph):
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                out[vi.name] = names[vi.type.tensor_type.elem_type]
        for init in g.initializer:
            out[init.name] = names[init.data_type]
    for n in model.graph.node:
        if n.op_type == "Cast":
            out[n.output[0]] = names[_attr(n, "to", 0)]
    return out


def check_graph(model, release, inferred=None):
    """[Finding] for every rule of TensorRT ``release`` that ``model`` breaks.

    model: onnx.ModelProto or a path; inferred: the same graph after shape inference (it may
    be a skeleton with big weights turned into inputs); made here when not given. Findings
    about the whole graph name "graph"; about network inputs/outputs, the tensor. Only the main
    graph is walked (not If/Loop bodies); ops of other domains (plugins) are not judged here.
    """
    import onnx
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    if inferred is None:
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception:       # keep going with the declared types
            inferred = model
    r = RULES[release]
    trt = "TensorRT " + release
    g = model.graph
    dtype = _dtypes(model, inferred)
    inits = set(i.name for i in g.initializer)
    consts = inits | set(o for n in g.node if n.op_type == "Constant" for o in n.output)
    graph_out = set(o.name for o in g.output)
    alias = r["dtype_aliases"]
    out = []

    def add(where, op, problem, fix):
        out.append(Finding(where, op, problem, fix))

    opset = max([i.version for i in model.opset_import if i.domain in ("", "ai.onnx")] or [0])
    if opset > r["max_opset"]:
        add("graph", "opset", "opset {} is above {}, the highest {}'s parser documents".format(
            opset, r["max_opset"], trt), "export with opset {}".format(r["max_opset"]))
    if opset < r["min_opset"]:
        add("graph", "opset", "opset {} is below {}, the lowest {}'s parser takes".format(
            opset, r["min_opset"], trt), "export with opset {} or above".format(r["min_opset"]))

    for vi in [i for i in g.input if i.name not in inits] + list(g.output):
        t = dtype.get(vi.name)
        if t == "UINT8" and not r["uint8_io"]:
            add(vi.name, "network I/O", "{} has no UINT8 network inputs or outputs".format(trt),
                "use float32 (or int32) inputs and outputs (--target trt8.2)")
        elif r["importable_dtypes"] is not None and t and t not in r["importable_dtypes"]:
            add(vi.name, "network I/O", "{} cannot import a {} network input or output".format(
                trt, t), "use float32 or int32")

    for n in g.node:
        op = n.op_type
        name = n.name or (n.output[0] if n.output else op)
        if n.domain not in ("", "ai.onnx"):
            continue
        if op not in r["op_types"]:
            add(name, op, "{}'s ONNX parser has no {}".format(trt, op),
                "replace that layer, or export for a newer --target")
            continue
        # docs/operators.md "Supported Types"
        idx = _TYPE_INPUT.get(op, 0)
        allowed = r["op_types"][op]
        if idx is not None and allowed and len(n.input) > idx and n.input[idx]:
            t = dtype.get(n.input[idx])
            if t and alias.get(t, t) not in allowed and not (op == "Cast" and t == "UINT8"):
                add(name, op, "{} takes {} on {}, not {}".format(
                    trt, op, ", ".join(allowed), t), "Cast its input to one of those first")
        # UINT8 only at the network's edges (P8.6+ ModelImporter.cpp; H8.5 header)
        for o in n.output:
            if dtype.get(o) == "UINT8" and not r["uint8_intermediate"] and o not in graph_out \
                    and op != "Constant":
                add(name, op, "its output {!r} is UINT8 inside the graph; {} takes UINT8 only "
                    "as a network input or output".format(o, trt),
                    "keep UINT8 at the graph's inputs and outputs, FLOAT inside")
        if op == "Cast":
            to, src = dtype.get(n.output[0]), dtype.get(n.input[0])
            if src and to and not cast_allowed(release, src, to):
                allowed = sorted(r["cast_to_uint8_from"] if to == "UINT8"
                                 else r["cast_from_uint8_to"])
                eff = alias.get(src, src)
                add(name, op, "Cast {}{} to {}: {} casts {} UINT8 only {} {}".format(
                    src, " ({} in the engine)".format(eff) if eff != src else "", to, trt,
                    "to" if to == "UINT8" else "from", "from" if to == "UINT8" else "to",
                    ", ".join(allowed) or "no type"),
                    "Cast to FLOAT first, then to UINT8" if to == "UINT8" and allowed else
                    "Cast UINT8 to FLOAT first" if allowed else "keep UINT8 out of the graph")
        elif op == "Resize":
            _check_resize(n, name, r, trt, opset, dtype, consts, add)
        elif op in ("ArgMax", "ArgMin"):
            t = dtype.get(n.input[0])
            if r["argmax_bad_input"] and t in r["argmax_bad_input"]:
                add(name, op, "{} takes no {} input to {}".format(trt, t, op), "Cast it to FLOAT")
        elif op == "TopK":
            t = dtype.get(n.input[0])
            if r["topk_bad_input"] and t in r["topk_bad_input"]:
                add(name, op, "{} takes no {} input to TopK".format(trt, t), "Cast it to FLOAT")
            if r["topk_k_initializer"] and len(n.input) > 1 and n.input[1] not in consts:
                add(name, op, "{} takes TopK's K only as an initializer".format(trt),
                    "make K a constant")
        elif op in ("QuantizeLinear", "DequantizeLinear") and r["qdq_zero_point_zero"]:
            _check_zero_point(n, name, g, trt, add)
    return out


def _check_resize(n, name, r, trt, opset, dtype, consts, add):
    mode = _attr(n, "mode", "nearest")
    if mode not in r["resize_modes"]:
        add(name, "Resize", "{} has no Resize mode {!r}".format(trt, mode),
            "use mode " + " or ".join(sorted(r["resize_modes"])))
    if opset >= 11:
        ctm = _attr(n, "coordinate_transformation_mode", "half_pixel")
        nearest = _attr(n, "nearest_mode", "round_prefer_floor")
        if ctm not in r["resize_coord_modes"]:
            add(name, "Resize", "{} has no coordinate_transformation_mode {!r}".format(trt, ctm),
                "use " + ", ".join(sorted(r["resize_coord_modes"])))
        if mode == "nearest" and nearest not in r["resize_nearest_modes"]:
            add(name, "Resize", "{} has no nearest_mode {!r}".format(trt, nearest),
                "use " + ", ".join(sorted(r["resize_nearest_modes"])))
        if r["resize_tfhp_nn_needs_round_prefer_floor"] and ctm == "tf_half_pixel_for_nn" \
                and nearest != "round_prefer_floor":
            add(name, "Resize", "{} takes tf_half_pixel_for_nn only with nearest_mode "
                "round_prefer_floor".format(trt), "set nearest_mode='round_prefer_floor'")
    t = dtype.get(n.input[0])
    if r["resize_bad_input"] and t in r["resize_bad_input"]:
        add(name, "Resize", "{} cannot resize a {} tensor".format(trt, t), "Cast it to FLOAT")
    if r["resize_scales_initializer"]:
        at = 2 if opset >= 11 else 1
        sizes = len(n.input) > 3 and n.input[3] and opset >= 11
        if not sizes and len(n.input) > at and n.input[at] and n.input[at] not in consts:
            add(name, "Resize", "{} takes Resize scales only as an initializer".format(trt),
                "make the scales a constant (or give sizes)")


def _check_zero_point(n, name, g, trt, add):
    import onnx.numpy_helper
    if len(n.input) < 3 or not n.input[2]:
        return
    zp = [i for i in g.initializer if i.name == n.input[2]]
    if zp and onnx.numpy_helper.to_array(zp[0]).any():     # the parser checks constants only
        add(name, n.op_type, "{} takes symmetric quantization only (zero point all zeros), this "
            "zero point is not".format(trt), "quantize with jetseg export --precision int8")


def refuse(model, releases, source=None, inferred=None):
    """Raise JetsegError naming the first node that breaks a rule of any of ``releases``."""
    from jetseg.errors import JetsegError
    for release in releases:
        found = check_graph(model, release, inferred)
        if found:
            f = found[0]
            where = "the graph" if f.node == "graph" else "tensor {!r}".format(f.node) \
                if f.op == "network I/O" else "node {!r} ({})".format(f.node, f.op)
            more = " (and {} more)".format(len(found) - 1) if len(found) > 1 else ""
            raise JetsegError("{}: {}{}".format(where, f.problem, more), path=source, fix=f.fix)


def table():
    """One row a release for the documentation: the rules at a glance."""
    rows = []
    for release in sorted(RULES, key=lambda s: [int(x) for x in s.split(".")]):
        r = RULES[release]
        casts = r["cast_to_uint8_from"]
        rows.append({"release": release, "opsets": "{}-{}".format(r["min_opset"], r["max_opset"]),
                     "ops": len(r["op_types"]), "uint8_io": r["uint8_io"],
                     "cast_to_uint8_from": ", ".join(sorted(casts)) or "-",
                     "resize_modes": ", ".join(sorted(r["resize_modes"])),
                     "argmax_dtype": r["argmax_dtype"] or "?",
                     "LayerNormalization": "LayerNormalization" in r["op_types"],
                     "Gelu": "Gelu" in r["op_types"]})
    return rows


if __name__ == "__main__":
    for row in table():
        print(row)
