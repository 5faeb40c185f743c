"""Wrap a network's ONNX graph with jetseg's pre- and post-processing.

The result is the single source of truth for pre/post-processing: raw uint8 pixels in,
class map (and overlay, confidence, raw scores where asked) out, facts in metadata_props.

    image  [1,H,W,3] uint8 BGR
      -> Cast float -> Transpose NCHW -> Gather channels to the net's order
      -> Mul scale -> Add bias                     ((x/255 - mean) / std)
      -> network -> logits [1,C,h,w]               ("scores" output, optional)
      -> Resize bilinear half_pixel to HxW         (upsample)
      -> Add -inf at the ignore class -> ArgMax -> (Cast float for TensorRT) -> Cast
                                                   ("classes" [1,H,W])
      -> Gather colour*alpha, 1-alpha -> image*keep + colour -> Round -> Cast
                                                   ("overlay" [1,H,W,3] uint8 BGR)
      -> Softmax -> ReduceMax                      ("confidence" [1,H,W], optional)

A frame graph (``frame_size``, frameops.py) takes the camera frame itself, [1,FH,FW,3], shrinks
it to the net's HxW inside the graph (OpenCV's INTER_AREA, as the CPU path does) and gives the
class map, overlay and confidence at the frame's size: scores upsampled to the frame before the
ArgMax (``smooth``), or the class map and the overlay's colours brought up from HxW
(``point``: nearest, ``linear``: bilinear), as jetseg's CPU path does for each mode.

jetseg.core.processing does the same on the CPU for graphs that lack it; tests hold both equal.

``net_tensors`` finds the net again inside a graph made here (its input and its logits) by
the graph's structure: frame graphs made from an export and the scores output added to an
older one (jetseg_export.upgrade) start from it.
"""
import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from jetseg.core.labels import resolve_alpha
from jetseg.core.modelinfo import ModelInfo
from jetseg.errors import JetsegError

from . import frameops

_DTYPES = {"uint8": TensorProto.UINT8, "float32": TensorProto.FLOAT,
           "int32": TensorProto.INT32, "int64": TensorProto.INT64}
P = "jetseg_"      # prefix of every tensor this module adds


def _opset(model):
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 0


def _dims(value_info):
    return [d.dim_value if d.HasField("dim_value") else None
            for d in value_info.type.tensor_type.shape.dim]


def compose(core, classes, colors, width=None, height=None, mean=None, std=None,
            norm_order="RGB", input_channels="BGR", input_dtype="uint8", upsample=True,
            argmax=True, overlay=True, confidence=False, scores=False, ignore_class=None,
            alpha=150, classes_dtype="uint8", classes_via="auto", extra=None,
            precision="fp32", check=True, frame_size=None, filter_mode="linear"):
    """Return a new ModelProto: ``core`` (float NCHW in, logits out) inside jetseg's graph.

    ``classes_via``: a dtype the ArgMax result is cast to before ``classes_dtype``, or None.
    TensorRT casts to uint8 only from float (targets.Target.classes_cast_via), so "auto" goes
    through float32 for a uint8 class map.
    ``check=False`` skips onnx's checker (the caller checks; it costs a serialisation, which
    takes seconds for a 500 MB VGG).
    ``frame_size`` (W, H): a frame graph for camera frames of that size, its outputs brought
    to it by ``filter_mode`` (point, linear or smooth; see the module doc).
    """
    opset = _opset(core)
    if opset < 13:
        raise ValueError("compose needs opset >= 13, the core graph has {}".format(opset))
    inits = set(i.name for i in core.graph.initializer)
    real = [i for i in core.graph.input if i.name not in inits]
    if len(real) != 1:
        raise ValueError("core graph must have exactly one input, it has {}".format(len(real)))
    core_in = real[0]
    core_out = core.graph.output[0]
    n, c, h, w = _dims(core_in)
    width = width or w
    height = height or h
    if not (width and height):
        raise ValueError("input size unknown: pass width and height")
    num = _dims(core_out)[1] or len(classes)
    if len(classes) != num or len(colors) != num:
        raise ValueError("{} classes / {} colours for a net with {} outputs".format(
            len(classes), len(colors), num))
    frame = tuple(int(v) for v in frame_size) if frame_size else None
    resized = frame is not None and frame != (width, height)
    if frame and filter_mode not in ("point", "linear", "smooth"):
        raise ValueError("filter mode {!r} is not point, linear or smooth".format(filter_mode))
    if frame and not (upsample and (argmax or overlay)):
        raise ValueError("a frame graph upsamples and argmaxes (upsample=True, argmax=True)")
    smooth = resized and filter_mode == "smooth"
    fw, fh = frame or (width, height)
    info = ModelInfo()
    info.mean = tuple(mean or info.mean)
    info.std = tuple(std or info.std)
    info.norm_order = norm_order

    nodes, inits_out, outputs = [], [], []

    def const(name, arr):
        inits_out.append(numpy_helper.from_array(np.asarray(arr), P + name))
        return P + name

    # ---- pre-processing ------------------------------------------------------------
    image = "image"
    graph_in = helper.make_tensor_value_info(image, _DTYPES[input_dtype], [1, fh, fw, 3])
    pixels = image
    if input_dtype != "float32":        # float input (TensorRT 8.2) needs no cast
        pixels = P + "pixels"
        nodes.append(helper.make_node("Cast", [image], [pixels], to=TensorProto.FLOAT))
    net_pixels, down = pixels, None
    if resized:
        net_pixels, down = frameops.downscale(nodes, const, pixels, frame, (width, height))
    nodes.append(helper.make_node("Transpose", [net_pixels], [P + "nchw"], perm=[0, 3, 1, 2]))
    x = P + "nchw"
    if input_channels != norm_order:
        nodes.append(helper.make_node("Gather", [x, const("swap", np.array([2, 1, 0], np.int64))],
                                      [P + "ordered"], axis=1))
        x = P + "ordered"
    from jetseg.core.processing import normalize_coeffs
    scale, bias = normalize_coeffs(info)
    nodes.append(helper.make_node("Mul", [x, const("scale", scale.reshape(1, 3, 1, 1))],
                                  [P + "scaled"]))
    nodes.append(helper.make_node("Add", [P + "scaled", const("bias", bias.reshape(1, 3, 1, 1))],
                                  [core_in.name]))

    # ---- the network itself ----------------------------------------------------------
    nodes.extend(core.graph.node)
    inits_out.extend(core.graph.initializer)
    logits = core_out.name
    if scores:
        outputs.append(helper.make_tensor_value_info(logits, TensorProto.FLOAT, _dims(core_out)))

    # ---- post-processing -----------------------------------------------------------
    s = logits
    up_w, up_h = (fw, fh) if smooth else (width, height)
    if upsample:
        nodes.append(helper.make_node(
            "Resize", [s, "", "", const("sizes", np.array([1, num, up_h, up_w], np.int64))],
            [P + "upsampled"], mode="linear", coordinate_transformation_mode="half_pixel"))
        s = P + "upsampled"
    out_h, out_w = (up_h, up_w) if upsample else tuple(_dims(core_out)[2:])
    if confidence:
        conf = P + "confidence_net" if resized and not smooth else "confidence"
        nodes.append(helper.make_node("Softmax", [s], [P + "prob"], axis=1))
        if opset >= 18:
            nodes.append(helper.make_node("ReduceMax", [P + "prob", const(
                "axis1", np.array([1], np.int64))], [conf], keepdims=0))
        else:
            nodes.append(helper.make_node("ReduceMax", [P + "prob"], [conf], axes=[1],
                                          keepdims=0))
        if conf != "confidence":        # as the CPU path: bilinear from the net's size
            frameops.resize(nodes, const, conf, [1, fh, fw], "linear", "confidence_px",
                            out="confidence")
        outputs.append(helper.make_tensor_value_info("confidence", TensorProto.FLOAT,
                                                     [1, fh, fw] if frame else [1, out_h, out_w]))
    if argmax or overlay:
        if ignore_class is not None:
            mask = np.zeros((1, num, 1, 1), np.float32)
            mask[0, ignore_class] = -np.inf
            nodes.append(helper.make_node("Add", [s, const("ignore", mask)], [P + "masked"]))
            s = P + "masked"
        nodes.append(helper.make_node("ArgMax", [s], [P + "argmax"], axis=1, keepdims=0))
        ids = P + "argmax"
        if classes_via == "auto":
            classes_via = "float32" if classes_dtype == "uint8" else None
        if resized and not smooth:      # TensorRT resizes float tensors only
            classes_via = "float32"
        if classes_via and classes_via != classes_dtype:
            # TensorRT casts to uint8 only from float/half (targets.Target.classes_cast_via)
            ids = P + "argmax_" + classes_via
            nodes.append(helper.make_node("Cast", [P + "argmax"], [ids],
                                          to=_DTYPES[classes_via]))
        if resized and not smooth:
            direct = classes_dtype == "float32"
            ids = frameops.classes_at_frame(nodes, const, ids, frame,
                                            out="classes" if direct else None)
        if ids != "classes":
            nodes.append(helper.make_node("Cast", [ids], ["classes"],
                                          to=_DTYPES[classes_dtype]))
        outputs.append(helper.make_tensor_value_info("classes", _DTYPES[classes_dtype],
                                                     [1, fh, fw] if frame else [1, out_h, out_w]))
    if overlay:
        if not upsample:
            raise ValueError("an overlay output needs upsample=True (overlay is at input size)")
        a = np.array(resolve_alpha(colors, alpha), np.float32) / 255.0
        rgb = np.array([col[:3] for col in colors], np.float32)
        table = rgb[:, ::-1] if input_channels == "BGR" else rgb
        if resized and not smooth:
            blend = frameops.overlay_at_frame(nodes, const, pixels, P + "argmax",
                                              np.ascontiguousarray(table), a, frame, filter_mode)
        else:
            nodes.append(helper.make_node("Gather", [const("premult", (table * a[:, None])
                                                           .astype(np.float32)), P + "argmax"],
                                          [P + "colour_px"], axis=0))
            # keep a [C,3] table: a [..,3] x [..,1] broadcast costs ONNX Runtime 15x
            nodes.append(helper.make_node("Gather", [const("keep", np.repeat(
                (1.0 - a)[:, None], 3, axis=1).astype(np.float32)), P + "argmax"],
                [P + "keep_px"], axis=0))
            nodes.append(helper.make_node("Mul", [pixels, P + "keep_px"], [P + "kept"]))
            nodes.append(helper.make_node("Add", [P + "kept", P + "colour_px"], [P + "blend"]))
            blend = P + "blend"
        if input_dtype == "float32":
            nodes.append(helper.make_node("Round", [blend], ["overlay"]))
        else:
            nodes.append(helper.make_node("Round", [blend], [P + "rounded"]))
            nodes.append(helper.make_node("Cast", [P + "rounded"], ["overlay"],
                                          to=_DTYPES[input_dtype]))
        outputs.append(helper.make_tensor_value_info("overlay", _DTYPES[input_dtype],
                                                     [1, fh, fw, 3]))

    graph = helper.make_graph(nodes, "jetseg", [graph_in], outputs, initializer=inits_out,
                              value_info=list(core.graph.value_info))
    model = helper.make_model(graph, opset_imports=list(core.opset_import),
                              producer_name="jetseg")
    model.ir_version = core.ir_version

    info.classes = list(classes)
    info.colors = [tuple(col) for col in colors]
    info.input_name = image
    info.input_layout = "NHWC"
    info.input_dtype = input_dtype
    info.width, info.height = fw, fh
    info.channels = input_channels
    if frame:
        info.frame = {"width": fw, "height": fh, "net_width": width, "net_height": height,
                      "filter": filter_mode, "downscale": down}
    info.graph.update(preprocess=True, upsample=bool(upsample), argmax=bool(argmax or overlay),
                      overlay=bool(overlay), confidence=bool(confidence),
                      ignore_class=ignore_class, alpha=int(alpha) if overlay else None)
    info.outputs = dict((o.name, o.name) for o in outputs if o.name != logits)
    if scores:
        info.outputs["scores"] = logits
    info.precision = precision
    info.extra = dict(extra or {})
    set_metadata(model, info.to_metadata())
    if check:
        onnx.checker.check_model(model)
    return model


def set_metadata(model, props):
    """Replace the ``jetseg.*`` metadata_props of ``model`` with ``props``."""
    keep = [p for p in model.metadata_props if not p.key.startswith("jetseg.")]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for k, v in sorted(props.items()):
        model.metadata_props.add(key=k, value=v)
    return model


def plain_metadata(model, classes=None, colors=None, **facts):
    """Add jetseg facts (classes, colours, mean/std ...) to an ONNX that has no graph steps."""
    info = ModelInfo()
    info.classes = classes
    info.colors = colors
    for k, v in facts.items():
        setattr(info, k, v)
    return set_metadata(model, info.to_metadata())


def net_tensors(model, source="model", fix="export the model again from its checkpoint"):
    """(net input, logits) of a graph ``compose`` made, found by its structure whatever the
    tensors are called: the logits are what the class map's ArgMax reads, behind compose's
    ignore-class Add (a constant holding -inf) and its upsample Resize (when the metadata says
    the graph upsamples); the net input is what the normalisation (Mul, then Add, each by a
    [1,3,1,1] constant) before the logits gives. JetsegError when the graph is not built
    that way."""
    def refuse(why):
        raise JetsegError("not a jetseg export with its pre/post graph ({})".format(why),
                          path=source, fix=fix)

    g = model.graph
    meta = dict((p.key, p.value) for p in model.metadata_props)
    if "jetseg.graph" not in meta:
        refuse("the model has no jetseg metadata")
    steps, roles = json.loads(meta["jetseg.graph"]), json.loads(meta.get("jetseg.outputs", "{}"))
    producer = dict((o, n) for n in g.node for o in n.output)
    consts = dict((i.name, i) for i in g.initializer)
    consts.update((n.output[0], a.t) for n in g.node if n.op_type == "Constant"
                  for a in n.attribute if a.name == "value")

    def operand(node, test):
        """The other input of a two-input ``node`` whose constant input passes ``test``."""
        if len(node.input) != 2:
            return None
        for k in (0, 1):
            c = consts.get(node.input[k])
            if c is not None and test(numpy_helper.to_array(c)):
                return node.input[1 - k]
        return None

    t, node = roles.get("classes"), None
    for _ in range(64):         # back from the class map through its casts and resizes
        node = producer.get(t)
        if node is None or node.op_type == "ArgMax":
            break
        t = node.input[0]
    if node is None or node.op_type != "ArgMax" or \
            [a.i for a in node.attribute if a.name == "axis"] != [1]:
        refuse("no class map made by an ArgMax over the class axis")
    x = node.input[0]
    node = producer.get(x)
    if node is not None and node.op_type == "Add":
        x = operand(node, lambda c: bool(np.isneginf(c).any())) or x
        node = producer.get(x)
    if steps.get("upsample"):
        if node is None or node.op_type != "Resize":
            refuse("the class map's ArgMax does not read the upsampled scores")
        x = node.input[0]
    ancestors, stack = set(), [x]
    while stack:
        n = producer.get(stack.pop())
        if n is not None and id(n) not in ancestors:
            ancestors.add(id(n))
            stack.extend(i for i in n.input if i)
    per_channel = (lambda c: c.shape == (1, 3, 1, 1))
    net_in = None
    for n in g.node:            # topological: the first normalisation is the pre-processing's
        if id(n) in ancestors and n.op_type == "Add":
            mul = producer.get(operand(n, per_channel))
            if mul is not None and mul.op_type == "Mul" and operand(mul, per_channel):
                net_in = n.output[0]
                break
    if net_in is None:
        refuse("no normalisation (Mul and Add by per-channel constants) before the net")
    return net_in, x
