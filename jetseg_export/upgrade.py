"""Bring a model exported by an older jetseg up to the current graph conventions, in place
or to a new file, without the PyTorch checkpoint:

    python3 -m jetseg_export.upgrade engines/camvid.onnx [-o OUT.onnx] [--target trt8.5]
    python3 -m jetseg_export.upgrade engines/camvid.onnx --scores
    python3 -m jetseg_export.upgrade engines/camvid.onnx --precision fp16 \\
        --check-images val/ --check-labels valannot/ --check-count 101 -o engines/camvid.fp16.onnx

- the uint8 class map goes ArgMax -> Cast FLOAT -> Cast UINT8 (TensorRT casts to uint8 only
  from float: targets.Target.classes_cast_via); exact, class ids are small integers;
- the metadata says what its mIoU figures mean (jetseg.eval.metrics.MIOU_DEFINITION);
- ``--scores``: the net's logits [1,C,h,w] become the ``scores`` output, as ``jetseg export
  --scores`` writes it (found by the graph's structure: compose.net_tensors). Nothing else
  changes, so the other outputs stay bit-identical, and a runtime that does not fetch the
  scores runs the same graph as before (smooth mode, --ignore-class and confidence fetch them);
- ``--precision fp16``: the net inside converted as ``jetseg export --precision fp16`` converts
  it (quantize.convert_fp16: float16 weights and compute, float32 in and out; what strongly
  typed TensorRT builds as FP16), the pre/post graph around it kept. Written only when its
  class map agrees with the fp32 model's on >= 99 % of the check frames' pixels (the export's
  FP16 gate), with the agreement and, given labels, the mIoU in its metadata; measured with
  its activations rounded to float16 (emulate_fp16: ONNX Runtime's CPU would compute most of
  it in float32).

The graph is then checked against the target's TensorRT parser rules and written
atomically; nothing is written when a rule or the FP16 gate fails.
"""
import argparse
import json
import os

from jetseg.errors import JetsegError
from jetseg.eval.metrics import MIOU_DEFINITION


def route_classes_through_float(model):
    """Insert Cast(to=FLOAT) between ArgMax and a direct Cast to UINT8; returns the count."""
    from onnx import TensorProto, helper
    graph = model.graph
    producers = dict((o, n) for n in graph.node for o in n.output)
    changed = 0
    for i, node in enumerate(list(graph.node)):
        to = [a.i for a in node.attribute if a.name == "to"]
        src = producers.get(node.input[0]) if node.op_type == "Cast" else None
        if to != [TensorProto.UINT8] or src is None or src.op_type not in ("ArgMax", "ArgMin"):
            continue
        mid = node.input[0] + "_float32"
        cast = helper.make_node("Cast", [node.input[0]], [mid], to=TensorProto.FLOAT,
                                name=(node.name or "classes") + "_via_float")
        graph.node.insert(list(graph.node).index(node), cast)
        node.input[0] = mid
        changed += 1
    return changed


def _meta(model):
    return dict((p.key[len("jetseg."):], json.loads(p.value)) for p in model.metadata_props
                if p.key.startswith("jetseg."))


def _drop_meta(model, keys):
    keys = set("jetseg." + k for k in keys)
    keep = [p for p in model.metadata_props if p.key not in keys]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)


def _set_meta(model, facts):
    """Set ``jetseg.<key>`` = json(value) for each of ``facts``, in place of older values."""
    _drop_meta(model, facts)
    for k, v in sorted(facts.items()):
        model.metadata_props.add(key="jetseg." + k, value=json.dumps(v))


def expose_scores(model, source="model"):
    """Make the net's logits the model's ``scores`` output, as compose(scores=True) has it
    (the first graph output, float [1,C,h,w]; ``scores`` in jetseg.outputs). Returns the
    tensor's name, or None when the model has a scores output already."""
    from onnx import TensorProto, helper
    from .compose import net_tensors
    roles = _meta(model).get("outputs") or {}
    if "scores" in roles:
        return None
    fix = "export the model again from its checkpoint with --scores"
    _, logits = net_tensors(model, source, fix=fix)
    dims = _float_nchw(model, logits, len(_meta(model).get("classes") or []))
    if dims is None:
        raise JetsegError("{!r}, what the class map's ArgMax reads, is not float [1,C,h,w] "
                          "scores".format(logits), path=source, fix=fix)
    outputs = list(model.graph.output)
    del model.graph.output[:]
    model.graph.output.extend([helper.make_tensor_value_info(logits, TensorProto.FLOAT, dims)]
                              + outputs)
    roles["scores"] = logits
    _set_meta(model, {"outputs": roles})
    return logits


def _float_nchw(model, name, classes):
    """The dims of tensor ``name`` when it is float [1,C,h,w] with C = ``classes`` (or
    unknown), else None."""
    from onnx import TensorProto, shape_inference
    from .compose import _dims
    from .targets import skeleton
    inferred = shape_inference.infer_shapes(skeleton(model), data_prop=True).graph
    found = [v for v in list(inferred.value_info) + list(inferred.output) if v.name == name]
    if not found or found[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        return None
    dims = _dims(found[0])
    return dims if len(dims) == 4 and dims[1] in (None, classes or None) else None


def to_fp16(model, source="model"):
    """A float16 copy of the fp32 jetseg ``model``: its net (framegraph.core_of) converted
    by quantize.convert_fp16, spliced back between the same pre- and post-processing."""
    from .framegraph import core_of
    from .quantize import convert_fp16, topo_sort
    meta = _meta(model)
    if meta.get("precision", "fp32") != "fp32":
        raise JetsegError("the model is {}; --precision fp16 converts an fp32 model".format(
            meta.get("precision")), path=source, fix="give the fp32 export")
    core = core_of(model, source)
    half = convert_fp16(core)
    out = type(model)()
    out.CopyFrom(model)
    g = out.graph
    old = set(o for n in core.graph.node for o in n.output)
    rest = [n for n in g.node if not old.intersection(n.output)]
    used = set(i for n in rest for i in n.input)
    inits = [i for i in g.initializer if i.name in used]
    infos = [v for v in g.value_info if v.name not in old]
    del g.node[:], g.initializer[:], g.value_info[:]
    g.node.extend(rest + list(half.graph.node))
    g.initializer.extend(inits + list(half.graph.initializer))
    g.value_info.extend(infos + list(half.graph.value_info))
    topo_sort(out)
    _set_meta(out, {"precision": "fp16"})
    return out


def emulate_fp16(model):
    """A float32 copy of the fp16 ``model`` that rounds every tensor the graph keeps in
    float16 to float16 (a Cast pair after each op), for measuring it on ONNX Runtime's CPU.

    Run as it is there, an fp16 graph is mostly computed in float32: ORT wraps each op that
    has no float16 CPU kernel (Conv, ...) in casts to and from float32, then removes the
    pairs its own casts make between such ops, so activations are never rounded to float16.
    Here arithmetic is float32 and every float16 tensor rounded, as a GPU that computes in
    float16 with float32 accumulation keeps its activations."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, shape_inference
    from .targets import skeleton
    half = TensorProto.FLOAT16
    out = type(model)()
    out.CopyFrom(model)
    g = out.graph
    inferred = shape_inference.infer_shapes(skeleton(out)).graph
    typed = dict((v.name, v.type.tensor_type.elem_type) for v in
                 list(inferred.value_info) + list(inferred.output) + list(inferred.input))

    def as_float(t):
        return numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name)

    for i, t in enumerate(g.initializer):
        if t.data_type == half:
            g.initializer[i].CopyFrom(as_float(t))
    nodes = []
    for n in g.node:
        for a in n.attribute:
            if a.name == "to" and a.i == half:
                a.i = TensorProto.FLOAT
            if a.HasField("t") and a.t.data_type == half:
                a.t.CopyFrom(as_float(a.t))
        nodes.append(n)
        for k, name in enumerate(n.output):
            if typed.get(name) == half:
                n.output[k] = name + "_f32"
                nodes.append(helper.make_node("Cast", [n.output[k]], [name + "_f16"], to=half))
                nodes.append(helper.make_node("Cast", [name + "_f16"], [name],
                                              to=TensorProto.FLOAT))
    del g.node[:], g.value_info[:]
    g.node.extend(nodes)
    return out


def fp16_agreement(reference, half, frames, labels=None):
    """(share of pixels whose class id the fp16 ``half`` gives as the fp32 ``reference``
    does, Confusion of ``half`` against ``labels`` or None); both run by ONNX Runtime, the
    fp16 graph as emulate_fp16 makes it round its activations."""
    import numpy as np
    from jetseg.eval.metrics import Confusion
    from .parity import ort_session
    from .progress import Progress
    meta = _meta(reference)
    ignore = (meta.get("graph") or {}).get("ignore_class")
    conf = Confusion(len(meta["classes"]), ignore) if labels is not None else None
    dtype = np.dtype(meta["input"]["dtype"])
    runs = [ort_session(reference), ort_session(emulate_fp16(half))]
    same = total = 0
    with Progress(len(frames), "fp16 check") as bar:
        for i, frame in enumerate(frames):
            a, b = [np.rint(s.run(["classes"], {meta["input"]["name"]: frame[None].astype(
                dtype)})[0][0]).astype(np.int64) for s in runs]
            same += int((a == b).sum())
            total += a.size
            if conf is not None:
                conf.add(labels[i], b)
            bar.advance()
    return same / float(total), conf


def upgrade(path, out=None, target=None, scores=False, precision=None, check_images=None,
            check_labels=None, check_count=None):
    """Upgrade ``path`` (see the module doc); returns [(what, detail)] of what was done."""
    import onnx
    from jetseg.files import write_atomic
    from .targets import check_target
    model = onnx.load(str(path))
    meta = dict((p.key, p.value) for p in model.metadata_props)
    target = target or json.loads(meta.get("jetseg.target", '"trt8.5"'))
    done = [("class-map cast(s) routed through float", route_classes_through_float(model))]
    facts = {}
    if any(k in meta for k in ("jetseg.miou", "jetseg.val_miou")) and \
            "jetseg.miou_definition" not in meta:
        facts["jetseg.miou_definition"] = json.dumps(MIOU_DEFINITION)
    for k, v in sorted(facts.items()):
        model.metadata_props.add(key=k, value=v)
    done.append(("metadata added", ", ".join(sorted(facts)) or "none"))
    if scores:
        name = expose_scores(model, source=str(path))
        done.append(("scores output", "the net's logits {!r}".format(name) if name else
                     "there already"))
    if precision == "fp16":
        if not out:
            raise JetsegError("--precision fp16 writes a new file", path=path,
                              fix="give it with -o, e.g. -o engines/camvid.fp16.onnx")
        check_target(model, target, source=str(path))
        half = to_fp16(model, source=str(path))
        done.append(("fp16", _gate_fp16(model, half, path, out, check_images, check_labels,
                                        check_count)))
        model = half
    check_target(model, target, source=str(out or path))
    write_atomic(out or path, model.SerializeToString())
    return done


def _gate_fp16(model, half, path, out, check_images, check_labels, check_count):
    """Check ``half`` against ``model`` (refused under the export's FP16 gate); record the
    figures in its metadata; returns them as one line."""
    from jetseg.eval.metrics import miou_facts
    from . import parity
    meta = _meta(model)
    width, height = meta["input"]["width"], meta["input"]["height"]
    if check_count is None:
        check_count = 16 if check_images else 4
    frames, labels, where = parity.check_frames(check_images, check_count, check_labels,
                                                width, height)
    agree, conf = fp16_agreement(model, half, frames, labels)
    if not agree >= parity.FP16_MIN_AGREEMENT:
        raise JetsegError("the FP16 graph agrees with the fp32 model on only {:.3f}% of pixels "
                          "(needs {:.0f}%): the net does not keep its results in float16; "
                          "nothing written".format(100.0 * agree,
                                                   100.0 * parity.FP16_MIN_AGREEMENT),
                          path=out, fix="keep the fp32 model (TensorRT can still build it "
                          "with --precision fp16 where mixed precision is allowed)")
    old = meta.get("parity") or {}
    agreement = {"fp16": round(agree, 6)}
    if old.get("frames") == where and "fp32" in (old.get("agreement") or {}):
        agreement["fp32"] = old["agreement"]["fp32"]
    facts = {"parity": {"agreement": agreement, "frames": where,
                        "fp16_against": "{} (fp32) on ONNX Runtime's CPU, float16 activations "
                                        "rounded as on a GPU".format(os.path.basename(str(path)))},
             "converted_from": os.path.basename(str(path))}
    line = "agrees with the fp32 model on {:.3f}% of pixels ({})".format(100.0 * agree, where)
    if conf is not None:
        facts.update(miou_facts(conf.miou(), split=where))
        line += ", mIoU {:.2f}%".format(100.0 * conf.miou())
    else:       # the fp32 model's figure is not this file's
        _drop_meta(half, ("miou", "miou_split"))
    _set_meta(half, facts)
    return line


def main(argv=None, prog="python3 -m jetseg_export.upgrade"):
    from jetseg.cli.common import run_guarded
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="a jetseg .onnx export")
    p.add_argument("-o", "--output", help="write here instead of replacing the model")
    p.add_argument("--target", help="check against this target (default: the model's own)")
    p.add_argument("--scores", action="store_true",
                   help="expose the net's logits as the scores output")
    p.add_argument("--precision", choices=("fp16",),
                   help="fp16: a float16 copy of an fp32 model (needs -o)")
    p.add_argument("--check-images", metavar="DIR", help="frames for the fp16 check "
                   "(default: random frames)")
    p.add_argument("--check-labels", metavar="DIR", help="label PNGs for the fp16 mIoU")
    p.add_argument("--check-count", type=int, help="frames to check (default 16, random 4)")
    p.add_argument("--debug", action="store_true")

    def run(args):
        if not os.path.isfile(args.model):
            raise JetsegError("no such file", path=args.model, fix="check the model path")
        if not args.precision and (args.check_images or args.check_labels or args.check_count):
            raise JetsegError("--check-images, --check-labels and --check-count check an "
                              "fp16 copy", fix="add --precision fp16 -o OUT.onnx, or leave "
                              "them out")
        done = upgrade(args.model, args.output, args.target, args.scores, args.precision,
                       args.check_images, args.check_labels, args.check_count)
        (_, casts), (_, keys) = done[:2]
        print("{}: {} class-map cast(s) routed through float, metadata added: {}".format(
            args.output or args.model, casts, keys))
        for what, detail in done[2:]:
            print("  {}: {}".format(what, detail))
        return 0
    return run_guarded(p, run, argv, prog=prog)


if __name__ == "__main__":
    import sys
    sys.exit(main())
