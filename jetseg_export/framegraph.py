"""Frame graphs (compose.py ``frame_size``): made from an existing jetseg ONNX, and checked
against jetseg's CPU path before they are written.

    jetseg export --from engines/camvid.onnx --frame-size 1280x720 -o engines/camvid.1280x720.onnx

``core_of`` takes the net out of a jetseg export (the nodes between jetseg's normalisation
and its upsample), so no checkpoint is needed; ``frame_models`` wraps it again with the
frame's pre/post graph and the model's own facts (classes, colours, mean/std, alpha, ignored
class, target), and with the net-size graph the CPU path runs (the reference).

Parity (``frame_parity``; every frame-graph export ends with it): the same frames through the
frame graph, and through the CPU path (the net-size graph of the same net, the frame shrunk
by OpenCV, class map and overlay brought back by jetseg.core.processing) in the graph's
filter mode:
    agreement   share of pixels with the same class id                       (>= 99.5 %)
    overlay     share of pixels within 2 grey levels on every channel         (>= 99 %)
"""
import json
import os
import shutil
import tempfile

import numpy as np

from jetseg import __version__
from jetseg.errors import JetsegError

from .compose import _dims, compose, net_tensors

MIN_AGREEMENT = 0.995
MIN_OVERLAY = 0.99
OVERLAY_TOLERANCE = 2
# facts of the source model that do not describe the frame graph
_NOT_CARRIED = ("parity", "frame", "frame_parity")


def _used_names(nodes):
    names = set()
    for n in nodes:
        names.update(i for i in n.input if i)
        for a in n.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                names.update(_used_names(g.node))
    return names


def core_of(model, source="model"):
    """The bare net inside a jetseg export: float NCHW normalised input -> logits."""
    from onnx import TensorProto, helper, shape_inference
    from .targets import skeleton
    g = model.graph
    core_in, logits = net_tensors(model, source, fix="make the frame graph from the "
                                     "checkpoint: jetseg export --checkpoint ... --frame-size WxH")
    producer = dict((o, n) for n in g.node for o in n.output)
    keep, stack = set(), [logits]
    while stack:
        t = stack.pop()
        n = producer.get(t)
        if t == core_in or n is None or id(n) in keep:
            continue
        keep.add(id(n))
        stack.extend(i for i in n.input if i)
    nodes = [n for n in g.node if id(n) in keep]
    used = _used_names(nodes)
    inits = [i for i in g.initializer if i.name in used]
    info = model_facts(model, source)
    f = info.frame or {}
    w, h = f.get("net_width", info.width), f.get("net_height", info.height)
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info(core_in, TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, None)], inits,
        value_info=[v for v in g.value_info if v.name in used])
    core = helper.make_model(graph, opset_imports=list(model.opset_import))
    core.ir_version = model.ir_version
    inferred = shape_inference.infer_shapes(skeleton(core))
    shape = [v for v in list(inferred.graph.output) + list(inferred.graph.value_info)
             if v.name == logits and v.type.tensor_type.HasField("shape")]
    dims = _dims(shape[0]) if shape else [1, len(info.classes or []) or None, None, None]
    core.graph.output[0].CopyFrom(helper.make_tensor_value_info(logits, TensorProto.FLOAT,
                                                                dims))
    return core


def model_facts(model, source="model"):
    from jetseg.core.modelinfo import ModelInfo
    props = dict((p.key, p.value) for p in model.metadata_props)
    info = ModelInfo.from_metadata(props, source=source)
    if not info.has_metadata or not info.graph.get("preprocess"):
        raise JetsegError("the model has no jetseg metadata (classes, normalisation, graph "
                          "steps)", path=source, fix="make the frame graph from the checkpoint:"
                          " jetseg export --checkpoint ... --frame-size WxH")
    return info


def _classes_dtype(model, tgt):
    from onnx import TensorProto
    for o in model.graph.output:
        if o.name == "classes":
            t = TensorProto.DataType.Name(o.type.tensor_type.elem_type).lower()
            t = {"float": "float32"}.get(t, t)
            if t in tgt.classes_dtypes:
                return t
    return tgt.classes_dtype


def frame_models(model, frame_size, filter_mode="linear", target=None, source="model",
                 scores=False, made_from=None):
    """(frame graph, net-size reference graph with scores, target) for a jetseg ``model``."""
    from .targets import get_target
    info = model_facts(model, source)
    tgt = get_target(target or info.extra.get("target") or "onnxruntime")
    from .compose import _opset
    if _opset(model) > tgt.opset:
        raise JetsegError("the model has opset {}; {} takes at most {}".format(
            _opset(model), tgt.note, tgt.opset), path=source,
            fix="make that target's frame graph from the checkpoint: jetseg export "
                "--checkpoint ... --target {} --frame-size WxH".format(tgt.name))
    core = core_of(model, source)
    f = info.frame or {}
    width, height = f.get("net_width", info.width), f.get("net_height", info.height)
    cdtype = _classes_dtype(model, tgt)
    extra = dict((k, v) for k, v in info.extra.items() if k not in _NOT_CARRIED)
    extra["target"] = tgt.name
    extra["producer"] = "jetseg export {}".format(__version__)
    if made_from or info.extra.get("frame_of"):     # the net-size model file, if there is one
        extra["frame_of"] = info.extra.get("frame_of") or made_from
    kw = dict(width=width, height=height, mean=info.mean, std=info.std,
              norm_order=info.norm_order, input_channels=info.channels,
              input_dtype=tgt.input_dtype, ignore_class=info.graph.get("ignore_class"),
              alpha=150 if info.graph.get("alpha") is None else info.graph["alpha"],
              classes_dtype=cdtype,
              classes_via=tgt.classes_cast_via(cdtype), extra=extra, precision=info.precision,
              check=False)
    overlay = info.graph.get("overlay", True)
    try:
        frame = compose(core, info.classes, info.colors, overlay=overlay,
                        confidence=bool(info.graph.get("confidence")), scores=scores,
                        frame_size=frame_size, filter_mode=filter_mode, **kw)
        reference = compose(core, info.classes, info.colors, overlay=True, scores=True, **kw)
    except ValueError as e:
        raise JetsegError("cannot make the frame graph: {}".format(e), path=source,
                          fix="give a --frame-size at least the net's input size ({}x{})"
                          .format(width, height))
    return frame, reference, tgt


def frames_at(size, check_images=None, count=None, seed=0):
    """(frames at ``size``, where they came from): images enlarged or shrunk as a camera of
    that size would see them (processing.resize_frame), else structured random frames."""
    from . import parity
    w, h = size
    if check_images:
        files = parity.pick(parity.list_images(check_images), count or 8)
        return ([parity.read_frame(f, w, h) for f in files],
                "{} frame(s) from {} resized to {}x{}".format(len(files), check_images, w, h))
    frames = parity.random_frames(count or 4, w, h, seed)
    return frames, "{} random frame(s) at {}x{}".format(len(frames), w, h)


def frame_parity(reference, frame, frames, filter_mode, workdir=None):
    """Compare the frame graph with the CPU path on ``frames`` (see the module doc)."""
    import onnx
    from jetseg.core.segmenter import Segmenter
    tmp = workdir or tempfile.mkdtemp(prefix="jetseg-frame-")
    try:
        paths = []
        for name, m in (("reference.onnx", reference), ("frame.onnx", frame)):
            paths.append(os.path.join(tmp, name))
            onnx.save(m, paths[-1])
        cpu = Segmenter(paths[0], filter_mode=filter_mode, frame_graph=None)
        gpu = Segmenter(paths[1], frame_graph=None)
        same = close = total = 0
        worst = 0
        for img in frames:
            a, b = cpu.process(img), gpu.process(img)
            same += int((a.classes == b.classes).sum())
            if b._graph_overlay is not None:
                d = np.abs(a.overlay().astype(np.int16) - b.overlay().astype(np.int16))
                d = d.max(axis=2)
                close += int((d <= OVERLAY_TOLERANCE).sum())
                worst = max(worst, int(d.max()))
            else:
                close += a.classes.size
            total += a.classes.size
        cpu.close()
        gpu.close()
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return {"agreement": same / float(total), "overlay_within_2": close / float(total),
            "overlay_max_diff": worst, "frames": len(frames), "filter": filter_mode}


def check_parity(stats, source="model"):
    """Refuse (JetsegError) a frame graph that does not match the CPU path closely enough."""
    if stats["agreement"] < MIN_AGREEMENT or stats["overlay_within_2"] < MIN_OVERLAY:
        raise JetsegError(
            "the frame graph matches the CPU path on only {:.3f}% of class ids (needs {:.1f}%) "
            "and {:.3f}% of overlay pixels (needs {:.0f}%); nothing written".format(
                100 * stats["agreement"], 100 * MIN_AGREEMENT, 100 * stats["overlay_within_2"],
                100 * MIN_OVERLAY), path=source, fix="report this with the --debug output")


def describe_parity(stats, where, size):
    return ("frame graph {}x{} ({}) vs CPU path, {}: class agreement {:.3f}%, overlay within "
            "{} grey levels {:.3f}% (max {})".format(
                size[0], size[1], stats["filter"], where, 100 * stats["agreement"],
                OVERLAY_TOLERANCE, 100 * stats["overlay_within_2"], stats["overlay_max_diff"]))


def add_parity(model, stats, where):
    entry = dict(stats, frames=where)
    model.metadata_props.add(key="jetseg.frame_parity", value=json.dumps(entry))


def checked_frame_graph(model, frame_size, filter_mode="linear", target=None, output="model",
                        source="model", check_images=None, check_count=None, scores=False,
                        made_from=None):
    """The frame graph of the jetseg ``model``, checked against its target's rules and against
    the CPU path (refused when either fails): (frame graph, one-line parity summary)."""
    from .targets import check_target
    frame, reference, tgt = frame_models(model, frame_size, filter_mode, target, source, scores,
                                         made_from)
    check_target(frame, tgt, source=output)
    frames, where = frames_at(frame_size, check_images, check_count)
    stats = frame_parity(reference, frame, frames, filter_mode)
    summary = describe_parity(stats, where, frame_size)
    check_parity(stats, source=output)
    add_parity(frame, stats, where)
    return frame, summary


def export_from_onnx(source, output, frame_size, filter_mode="linear", target=None,
                     check_images=None, check_count=None):
    """``jetseg export --from``: write the frame graph of the jetseg ONNX ``source``;
    returns (the frame graph, the one-line parity summary)."""
    import onnx
    from jetseg.files import write_atomic
    if not os.path.isfile(str(source)):
        raise JetsegError("no such file", path=source, fix="give the .onnx jetseg export wrote")
    try:
        model = onnx.load(str(source))
    except Exception as e:          # protobuf's own errors
        raise JetsegError("not an ONNX file ({})".format(str(e).splitlines()[0][:200]),
                          path=source, fix="give the .onnx jetseg export wrote")
    frame, summary = checked_frame_graph(model, frame_size, filter_mode, target, output, source,
                                         check_images, check_count,
                                         made_from=os.path.basename(str(source)))
    write_atomic(output, frame.SerializeToString())
    return frame, summary
