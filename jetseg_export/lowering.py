"""Rewrite an exported network's ONNX into ops and an opset a target takes, exactly.

    notes = lower(core, target)       # in place; then check_target() judges the result

Two steps, each exact (same function, not an approximation):
1. Opset: a graph newer than the target's opset (PyTorch's dynamo exporter writes opset 18)
   is relabelled node by node: an op whose definition did not change since the target's opset
   stays as it is; known changes are undone (Reduce* axes input -> attribute, Reshape's
   allowzero=0, Cast's saturate, Split's num_outputs, Resize's opset-18 defaults, GridSample's
   mode names); an op the older opset lacks is lowered as in step 2. Anything else is refused,
   naming the node.
2. Ops the target's parser lacks are lowered to ops it takes:
       LayerNormalization -> ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add
                             (the form PyTorch itself exports below opset 17)
       Gelu               -> 0.5*x*(1+Erf(x/sqrt(2))); approximate="tanh": the Tanh formula
                             the op defines for that mode
       Mish               -> x*Tanh(Softplus(x))
   An op with no rule is left for the target check, which names it.

Whether a target takes an op is asked of ``target.ops`` (None: ONNX Runtime, takes all).
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from jetseg.errors import JetsegError, log

P = "jetseg_lower_"
_REDUCE = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")


def takes(target, op_type):
    """Does ``target``'s parser take ``op_type``? (the one place lowering asks)"""
    ops = getattr(target, "ops", None)
    return ops is None or op_type in ops


def opset_of(model):
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 0


class _Graph(object):
    """Node-list rewriting with fresh names, shared constants and types on demand."""

    def __init__(self, model):
        self.model = model
        self.opset = opset_of(model)
        self.out_opset = self.opset        # the opset the written nodes are for
        self.n = 0
        self.inits = dict((i.name, i) for i in model.graph.initializer)
        self.consts = {}
        self._types = None
        self._shapes = None

    def name(self, base):
        self.n += 1
        return "{}{}_{}".format(P, base, self.n)

    def const(self, value, dtype):
        key = (float(value) if np.ndim(value) == 0 else tuple(np.ravel(value)), dtype)
        if key not in self.consts:
            arr = np.asarray(value, dtype=helper.tensor_dtype_to_np_dtype(dtype))
            t = numpy_helper.from_array(arr, self.name("c"))
            self.model.graph.initializer.append(t)
            self.inits[t.name] = t
            self.consts[key] = t.name
        return self.consts[key]

    def _infer(self):
        if self._types is None:
            inferred = onnx.shape_inference.infer_shapes(self.model)
            g = inferred.graph
            self._types, self._shapes = {}, {}
            for vi in list(g.input) + list(g.output) + list(g.value_info):
                tt = vi.type.tensor_type
                self._types[vi.name] = tt.elem_type
                if tt.HasField("shape"):
                    self._shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None
                                             for d in tt.shape.dim]
            for i in g.initializer:
                self._types[i.name] = i.data_type
                self._shapes[i.name] = list(i.dims)

    def dtype(self, tensor):
        if tensor in self.inits:
            return self.inits[tensor].data_type
        self._infer()
        return self._types.get(tensor) or TensorProto.FLOAT

    def shape(self, tensor):
        self._infer()
        return self._shapes.get(tensor)

    def constant(self, tensor):
        """The value of a constant input (initializer or Constant node), else None."""
        if tensor in self.inits:
            return numpy_helper.to_array(self.inits[tensor])
        for node in self.model.graph.node:
            if node.op_type == "Constant" and tensor in node.output:
                for a in node.attribute:
                    if a.name == "value":
                        return numpy_helper.to_array(a.t)
        return None

    def reduce(self, op, x, axes, out):
        if self.out_opset >= 18:
            return helper.make_node(op, [x, self.const(np.array(axes, np.int64),
                                                       TensorProto.INT64)], [out], keepdims=1)
        return helper.make_node(op, [x], [out], axes=list(axes), keepdims=1)


def _attrs(node):
    return dict((a.name, helper.get_attribute_value(a)) for a in node.attribute)


# ---- op lowerings ----------------------------------------------------------------------
def _layer_norm(g, node):
    a = _attrs(node)
    axis, eps = a.get("axis", -1), a.get("epsilon", 1e-5)
    x, scale = node.input[0], node.input[1]
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if axis >= 0:
        rank = len(g.shape(x) or [])
        if not rank:
            return None
        axis -= rank
    axes = list(range(axis, 0))
    dt = g.dtype(x)
    stash = a.get("stash_type", 1) == TensorProto.FLOAT and dt != TensorProto.FLOAT
    nm = g.name
    nodes = []
    if stash:       # statistics in float32, as the op's stash_type=1 says
        xf = nm("xf")
        nodes.append(helper.make_node("Cast", [x], [xf], to=TensorProto.FLOAT))
        x, cdt = xf, TensorProto.FLOAT
    else:
        cdt = dt
    mean, d, sq, var, ve, sd, y = (nm(s) for s in ("mean", "centred", "sq", "var", "var_eps",
                                                   "std", "normed"))
    nodes += [g.reduce("ReduceMean", x, axes, mean),
              helper.make_node("Sub", [x, mean], [d]),
              helper.make_node("Pow", [d, g.const(2.0, cdt)], [sq]),
              g.reduce("ReduceMean", sq, axes, var),
              helper.make_node("Add", [var, g.const(eps, cdt)], [ve]),
              helper.make_node("Sqrt", [ve], [sd]),
              helper.make_node("Div", [d, sd], [y])]
    if stash:
        yc = nm("normed_cast")
        nodes.append(helper.make_node("Cast", [y], [yc], to=dt))
        y = yc
    outs = list(node.output)
    if bias:
        ys = nm("scaled")
        nodes += [helper.make_node("Mul", [y, scale], [ys]),
                  helper.make_node("Add", [ys, bias], [outs[0]])]
    else:
        nodes.append(helper.make_node("Mul", [y, scale], [outs[0]]))
    if len(outs) > 1 and outs[1]:
        nodes.append(helper.make_node("Identity", [mean], [outs[1]]))
    if len(outs) > 2 and outs[2]:
        nodes.append(helper.make_node("Div", [g.const(1.0, cdt), sd], [outs[2]]))
    return nodes


def _gelu(g, node):
    x, y = node.input[0], node.output[0]
    dt = g.dtype(x)
    nm = g.name
    if _attrs(node).get("approximate", b"none") in (b"tanh", "tanh"):
        cube, inner, scaled, th = nm("cube"), nm("inner"), nm("scaled"), nm("tanh")
        pre = [helper.make_node("Pow", [x, g.const(3.0, dt)], [cube]),
               helper.make_node("Mul", [cube, g.const(0.044715, dt)], [nm("cube_k")])]
        pre += [helper.make_node("Add", [x, pre[-1].output[0]], [inner]),
                helper.make_node("Mul", [inner, g.const(np.sqrt(2.0 / np.pi), dt)], [scaled]),
                helper.make_node("Tanh", [scaled], [th])]
        core = th
    else:
        div, erf = nm("div"), nm("erf")
        pre = [helper.make_node("Div", [x, g.const(np.sqrt(2.0), dt)], [div]),
               helper.make_node("Erf", [div], [erf])]
        core = erf
    one, half = nm("one_plus"), nm("half_x")
    return pre + [helper.make_node("Add", [core, g.const(1.0, dt)], [one]),
                  helper.make_node("Mul", [x, g.const(0.5, dt)], [half]),
                  helper.make_node("Mul", [half, one], [y])]


def _mish(g, node):
    sp, th = g.name("softplus"), g.name("tanh")
    return [helper.make_node("Softplus", [node.input[0]], [sp]),
            helper.make_node("Tanh", [sp], [th]),
            helper.make_node("Mul", [node.input[0], th], list(node.output))]


LOWERINGS = {"LayerNormalization": _layer_norm, "Gelu": _gelu, "Mish": _mish}


# ---- opset down-conversion -------------------------------------------------------------
def _older(node, opset):
    """The op's schema at ``opset`` (None if the op did not exist yet)."""
    try:
        return onnx.defs.get_schema(node.op_type, max_inclusive_version=opset, domain="")
    except onnx.defs.SchemaError:
        return None


def _changed_since(node, opset, have):
    """Did ``node``'s op change after ``opset`` (up to the graph's ``have``)?"""
    try:
        return onnx.defs.get_schema(node.op_type, max_inclusive_version=have,
                                    domain="").since_version > opset
    except onnx.defs.SchemaError:
        return False            # not an ONNX op: the target check names it


def _relabel(g, node, opset):
    """``node`` as the same function at ``opset``: [node] (maybe edited) or None."""
    a = _attrs(node)
    op = node.op_type
    if op in _REDUCE and len(node.input) > 1 and node.input[1]:
        axes = g.constant(node.input[1])
        if axes is None or a.get("noop_with_empty_axes", 0):
            return None
        kw = {"keepdims": a.get("keepdims", 1)}
        if np.size(axes):
            kw["axes"] = [int(v) for v in np.ravel(axes)]
        return [helper.make_node(op, [node.input[0]], list(node.output), name=node.name, **kw)]
    if op == "Split" and "num_outputs" in a:
        shape = g.shape(node.input[0])
        axis = a.get("axis", 0)
        if not shape or shape[axis] is None:
            return None
        k, n = a["num_outputs"], shape[axis]
        step = -(-n // k)
        sizes = [min(step, n - i * step) for i in range(k)]
        split = g.const(np.array(sizes, np.int64), TensorProto.INT64)
        return [helper.make_node("Split", [node.input[0], split], list(node.output),
                                 name=node.name, axis=axis)]
    drop = {"Reshape": {"allowzero": 0}, "Cast": {"saturate": None},
            "Resize": {"antialias": 0, "keep_aspect_ratio_policy": b"stretch"}}.get(
                op, {"noop_with_empty_axes": 0} if op in _REDUCE else {})
    if op == "Reshape" and a.get("allowzero", 0):
        shape = g.constant(node.input[1])      # allowzero only matters for a 0 in the shape
        if shape is None or not np.all(shape):
            return None
        a["allowzero"] = 0
    for k, ok in drop.items():
        if k in a and ok is not None and a[k] != ok:
            return None
    keep = [x for x in node.attribute if x.name not in drop]
    if op == "Resize" and ("axes" in a or a.get("coordinate_transformation_mode") ==
                           b"half_pixel_symmetric"):
        return None
    if op == "GridSample" and opset < 20:
        modes = {b"linear": "bilinear", b"cubic": "bicubic"}
        mode = a.get("mode", b"linear")
        keep = [x for x in keep if x.name != "mode"]
        keep.append(helper.make_attribute("mode", modes.get(mode, mode)))
    old = _older(node, opset)
    if old is None or any(x.name not in old.attributes for x in keep):
        return None
    used = len(node.input)
    while used and not node.input[used - 1]:
        used -= 1
    if used > old.max_input:
        return None
    new = helper.make_node(op, list(node.input[:used]), list(node.output), name=node.name)
    new.attribute.extend(keep)
    return [new]


def _why(node):
    a = _attrs(node)
    extra = ["{}={}".format(k, v.decode() if isinstance(v, bytes) else v)
             for k, v in sorted(a.items()) if k in ("antialias", "mode",
                                                     "coordinate_transformation_mode")]
    return node.op_type + (" " + ", ".join(extra) if extra else "")


def lower(model, target, source="model"):
    """Rewrite ``model`` (in place) for ``target``; returns notes of what changed."""
    g = _Graph(model)
    want = getattr(target, "opset", g.opset)
    down = g.opset > want
    g.out_opset = min(g.opset, want)
    counts = {}
    out = []
    for node in model.graph.node:
        repl = [node]
        if node.domain in ("", "ai.onnx"):
            if down and _changed_since(node, want, g.opset):
                repl = None if _older(node, want) is None else _relabel(g, node, want)
            op = node.op_type
            if op in LOWERINGS and (repl is None or not takes(target, op)):
                low = LOWERINGS[op](g, node)
                if low is not None:
                    k, _ = counts.get(op, (0, None))
                    counts[op] = (k + 1, [n.op_type for n in low])
                    repl = low
            if repl is None:
                raise JetsegError(
                    "node {!r} ({}) needs ONNX opset {}; {} takes at most {} and there is no "
                    "exact rewrite".format(node.name or node.output[0], _why(node), g.opset,
                                           _note(target), want),
                    path=source, fix="replace that layer in the model, or export for a target "
                    "with a newer opset")
        out.extend(repl)
    del model.graph.node[:]
    model.graph.node.extend(out)
    notes = []
    if down:
        for imp in model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                imp.version = want
        if not model.functions:         # as the TorchScript exporter writes that opset
            try:
                model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
            except (ValueError, KeyError):
                pass
        notes.append("graph converted from opset {} to {}".format(g.opset, want))
    for op, (k, parts) in sorted(counts.items()):
        notes.append("{} {} -> {} (exact)".format(k, op, "/".join(parts)))
    for n in notes:
        log.info("lowered for %s: %s", _note(target), n)
    return notes


def _note(target):
    return getattr(target, "note", None) or getattr(target, "name", str(target))


__all__ = ["lower", "takes", "LOWERINGS"]
