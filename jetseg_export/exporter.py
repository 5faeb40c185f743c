"""PyTorch net -> one self-describing ONNX for a target, with parity proven.

    net = build_net(arch="deeplabv3-mobilenet", num_classes=12, checkpoint="best.pth")
    result = export_onnx(net, "camvid.onnx", num_classes=12, classes=names, width=480,
                         height=360, target="trt8.5", precision="int8", calib="calib/")
    print(result.table)

Steps: trace the bare network with the TorchScript exporter (float NCHW in, logits out, the
target's opset) -> optionally INT8 (Q/DQ) or FP16 (float16 weights and compute inside the net,
what strongly typed TensorRT builds as FP16) -> wrap with jetseg's pre/post graph
(compose.py) -> check against the target and its TensorRT parser rules (targets.py) ->
compare with PyTorch on real or random frames (FP32 must agree on >= 99.9 % of pixels, FP16
on >= 99 %) -> with ``frame_size``, the frame graph of that model instead (framegraph.py,
checked against the CPU path) -> write the file.
"""
import json
import os

import onnx

from jetseg import __version__
from jetseg.errors import JetsegError, log
from jetseg.core.labels import fit_colors, fit_labels

from . import archs, conventions, lowering, parity, tracing
from .compose import compose
from .targets import check_target, decompose_hardswish, get_target

PRECISIONS = ("fp32", "fp16", "int8")
FP16_MIN_AGREEMENT = parity.FP16_MIN_AGREEMENT      # (why 99 %: there)


def build_net(arch=None, module=None, num_classes=None, checkpoint=None):
    """The network: ``--arch`` name or ``--module pkg.mod:build``, with checkpoint loaded."""
    if bool(arch) == bool(module):
        raise JetsegError("give either --arch or --module",
                          fix="--arch NAME (one of {}) or --module pkg.mod:build".format(
                              ", ".join(archs.ARCHS)))
    if not num_classes or num_classes < 2:
        raise JetsegError("--num-classes {} is not a class count".format(num_classes),
                          fix="pass --num-classes N (N >= 2) or --labels classes.txt")
    net = archs.build_arch(arch, num_classes) if arch else \
        archs.build_module(module, num_classes)
    if checkpoint:
        net = archs.load_checkpoint(net, checkpoint, num_classes, arch=arch)
    else:
        log.warning("no --checkpoint: exporting random weights (only useful for testing)")
    return net.eval()


def torch_to_onnx(net, width, height, opset):
    """Trace ``net`` (already wrapped to return logits) at 1x3xHxW -> ModelProto."""
    return tracing.to_onnx(net, width, height, opset)[0]


class ExportResult(object):
    def __init__(self):
        self.path = None
        self.model = None
        self.rows = []
        self.table = ""
        self.where = ""
        self.frame = None           # the frame graph's parity with the CPU path (one line)

    def row(self, name):
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)


def export_onnx(net, output, num_classes, classes=None, colors=None, width=480, height=360,
                target="trt8.5", precision="fp32", mean=None, std=None, norm_order="RGB",
                ignore_class=None, alpha=150, overlay=True, confidence=False, scores=False,
                classes_dtype=None, check_images=None, check_labels=None, check_count=None,
                calib=None, calib_count=None, calib_method="percentile", arch=None, dataset=None,
                min_agreement=parity.FP32_MIN_AGREEMENT, extra_facts=None, frame_size=None,
                filter_mode="linear"):
    """Export ``net`` to ``output`` (see the module doc); returns an ExportResult."""
    from jetseg.core.modelinfo import IMAGENET_MEAN, IMAGENET_STD
    tgt = get_target(target)
    if precision not in PRECISIONS:
        raise JetsegError("unknown --precision {!r}".format(precision),
                          fix="use one of: " + ", ".join(PRECISIONS))
    if precision == "int8" and not calib:
        raise JetsegError("--precision int8 needs calibration images",
                          fix="pass --calib DIR with a few dozen frames like the ones it will "
                              "see (e.g. 100 training images)")
    if width < 8 or height < 8:
        raise JetsegError("input size {}x{} is too small".format(width, height),
                          fix="use at least 8x8 (e.g. --input-size 480x360)")
    mean = tuple(mean or IMAGENET_MEAN)
    std = tuple(std or IMAGENET_STD)
    classes = fit_labels(classes, num_classes, source="--labels")
    colors = fit_colors(colors, num_classes, source="--colors")
    if ignore_class is not None and not 0 <= ignore_class < num_classes:
        raise JetsegError("--ignore-class {} is not a class id (0..{})".format(
            ignore_class, num_classes - 1), fix="give a valid class id or name")
    cdtype = classes_dtype or tgt.classes_dtype
    if cdtype == "uint8" and num_classes > 256:
        cdtype = "int32"
    if cdtype not in tgt.classes_dtypes:
        raise JetsegError("--classes-dtype {} does not suit {}".format(cdtype, tgt.note),
                          fix="use one of: " + ", ".join(tgt.classes_dtypes))
    if check_count is None:
        check_count = 16 if check_images else 4

    # ---- PyTorch side ------------------------------------------------------------------
    wrapped, _ = conventions.logits_module(net, width, height, num_classes)

    core, exporter_name = tracing.to_onnx(wrapped, width, height, tgt.opset)
    if tgt.ops is not None and "HardSwish" not in tgt.ops:     # TensorRT before 8.5
        decompose_hardswish(core)
    lowering.lower(core, tgt, source=output)
    extra = {"arch": arch or type(net).__name__, "target": tgt.name,
             "producer": "jetseg export {}".format(__version__), "exporter": exporter_name}
    if dataset:
        extra["dataset"] = dataset
    extra.update(extra_facts or {})

    def wrap(c, prec):
        # always with the scores output: parity reads it; dropped before writing if unasked
        try:
            return compose(c, classes, colors, width=width, height=height, mean=mean, std=std,
                           norm_order=norm_order, input_channels="BGR",
                           input_dtype=tgt.input_dtype, upsample=True, argmax=True,
                           overlay=overlay, confidence=confidence, scores=True,
                           ignore_class=ignore_class, alpha=alpha, classes_dtype=cdtype,
                           classes_via=tgt.classes_cast_via(cdtype), extra=extra,
                           precision=prec, check=False)
        except (ValueError, onnx.checker.ValidationError) as e:
            raise JetsegError("cannot compose the graph: {}".format(e),
                              fix="report this with the --debug output")

    final_core = core
    if precision == "int8":
        from .quantize import calibration_batches, quantize_int8
        if calib_count is None:
            calib_count = 100 if calib_method == "minmax" else 32
        if calib_method != "minmax" and calib_count > 32:
            log.warning("--calib-method %s keeps every activation of every calibration frame "
                        "in memory; with %d frames that may not fit (try --calib-count 24)",
                        calib_method, calib_count)
        files = parity.pick(parity.list_images(calib, "--calib"), calib_count)
        final_core = quantize_int8(core, calibration_batches(files, width, height, mean, std,
                                                             norm_order), len(files),
                                   calib_method)
    elif precision == "fp16":
        from .quantize import convert_fp16
        final_core = convert_fp16(core)
    model = wrap(final_core, precision)
    check_target(model, tgt, source=output)
    # ONNX Runtime's CPU computes most ops of an fp16 graph in float32, which would hide a
    # net that cannot keep its activations in float16: checked rounded as a GPU keeps them
    from .upgrade import emulate_fp16
    check_models = [("onnx " + precision, emulate_fp16(model) if precision == "fp16" else model)]
    if precision != "fp32":
        fp32_model = wrap(core, "fp32")
        check_target(fp32_model, tgt, source=output)
        check_models.insert(0, ("onnx fp32", fp32_model))
    del core, final_core

    # ---- parity ------------------------------------------------------------------------
    frames, labels, where = parity.check_frames(check_images, check_count, check_labels,
                                                 width, height)
    rows = parity.run_parity(wrapped, check_models, frames, width, height, mean, std,
                             norm_order, tgt.input_dtype, ignore_class, num_classes, labels,
                             label_ignore=ignore_class)
    result = ExportResult()
    result.rows, result.where = rows, where
    result.table = parity.format_table(rows, where)
    fp32 = result.row("onnx fp32")
    if not fp32.agreement >= min_agreement:
        log.error("%s", result.table)
        raise JetsegError("FP32 ONNX agrees with PyTorch on only {:.3f}% of pixels (max logit "
                          "error {:.3g}, needs {:.1f}%); the export is wrong, nothing "
                          "written".format(100.0 * fp32.agreement, fp32.max_err,
                                           100.0 * min_agreement),
                          path=output, fix="report this with the --debug output")
    if precision == "fp16" and not result.row("onnx fp16").agreement >= FP16_MIN_AGREEMENT:
        log.error("%s", result.table)
        raise JetsegError("the FP16 graph agrees with PyTorch on only {:.3f}% of pixels (needs "
                          "{:.0f}%): the net does not keep its results in float16; nothing "
                          "written".format(100.0 * result.row("onnx fp16").agreement,
                                           100.0 * FP16_MIN_AGREEMENT),
                          path=output, fix="export with --precision fp32 (TensorRT can still "
                          "build it with --precision fp16 where mixed precision is allowed)")
    summary = dict((r.name.replace("onnx ", ""), round(r.agreement, 6)) for r in rows[1:])
    facts = {"parity": {"agreement": summary, "frames": where}}
    if labels is not None:
        from jetseg.eval.metrics import miou_facts
        facts.update(miou_facts(rows[-1].conf.miou(), split=where))
    if frame_size:      # the net checked against PyTorch; now the frame graph around it
        from .framegraph import checked_frame_graph
        model, result.frame = checked_frame_graph(
            model, frame_size, filter_mode, tgt.name, output, output, check_images,
            check_count, scores=scores)
    _add_metadata(model, facts)
    if not scores:
        _drop_scores(model)
        check_target(model, tgt, source=output)

    try:
        data = model.SerializeToString()
    except ValueError as e:             # protobuf's 2 GB limit
        raise JetsegError("model too large for one ONNX file ({})".format(e), path=output,
                          fix="use a smaller --input-size or net; external data is not "
                              "supported yet")
    out_dir = os.path.dirname(os.path.abspath(str(output)))
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    from jetseg.files import write_atomic
    write_atomic(output, data)
    result.path = str(output)
    result.model = model
    return result


def _drop_scores(model):
    for p in model.metadata_props:
        if p.key == "jetseg.outputs":
            roles = json.loads(p.value)
            name = roles.pop("scores", None)
            p.value = json.dumps(roles)
            keep = [o for o in model.graph.output if o.name != name]
            del model.graph.output[:]
            model.graph.output.extend(keep)


def _add_metadata(model, facts):
    for k, v in facts.items():
        key = "jetseg." + k
        for p in list(model.metadata_props):
            if p.key == key:
                model.metadata_props.remove(p)
        model.metadata_props.add(key=key, value=json.dumps(v))


def describe(model):
    """One line: inputs, outputs, opset, node count, size (MB)."""
    g = model.graph
    ins = ", ".join("{} {}".format(i.name, onnx.TensorProto.DataType.Name(
        i.type.tensor_type.elem_type).lower()) for i in g.input)
    outs = ", ".join("{} {}".format(o.name, onnx.TensorProto.DataType.Name(
        o.type.tensor_type.elem_type).lower()) for o in g.output)
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return "in: {}; out: {}; opset {}; {} nodes; {:.1f} MB".format(
        ins, outs, opset[0] if opset else "?", len(g.node), model.ByteSize() / 1e6)


__all__ = ["build_net", "export_onnx", "torch_to_onnx", "describe", "PRECISIONS"]
