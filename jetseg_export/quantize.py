"""INT8 (Q/DQ from calibration images) and FP16 versions of the bare network's ONNX.

INT8 follows what TensorRT's explicit quantization takes, so the one file is a TensorRT INT8
network and runs on ONNX Runtime's CPU too (accuracy measured on the desktop):
    QuantFormat.QDQ, INT8 activations with symmetric ranges (zero point 0), INT8 weights
    per output channel (axis 0; ConvTranspose axis 1), biases left in float, Q/DQ only at the
    inputs of the op types TensorRT fuses with them (Conv, ConvTranspose, Gemm, MatMul).
Only the network is quantized: the pre/post-processing jetseg composes around it stays
float, so pixels, colours and the argmax are exact.
"""
import contextlib
import io
import logging
import os
import shutil
import tempfile

import numpy as np
import onnx

from jetseg.errors import JetsegError, log

from .progress import Progress

QUANT_OPS = ["Conv", "ConvTranspose", "Gemm", "MatMul"]
CALIB_METHODS = ("minmax", "entropy", "percentile")


class _QuietRootLogger(object):
    """quantize_static warns through the root logger (pre-processing advice); hush it."""

    def __enter__(self):
        self.root = logging.getLogger()
        self.level = self.root.level
        self.root.setLevel(max(self.level, logging.ERROR))

    def __exit__(self, *exc):
        self.root.setLevel(self.level)


def quantize_int8(core, batches, count, method="minmax", op_types=None):
    """``core`` (float NCHW in, logits out) -> Q/DQ INT8 ModelProto.

    batches: iterable of [1,3,H,W] float32 arrays (pre-processed calibration frames),
    count: how many it yields (for the progress bar).
    """
    try:
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                              QuantFormat, QuantType, quantize_static)
    except ImportError as e:
        raise JetsegError("INT8 needs onnxruntime's quantization tools ({})".format(e),
                          fix="pip install 'jetseg[export]' (onnxruntime >= 1.16)")
    if method not in CALIB_METHODS:
        raise JetsegError("unknown --calib-method {!r}".format(method),
                          fix="use one of: " + ", ".join(CALIB_METHODS))
    input_name = [i.name for i in core.graph.input
                  if i.name not in set(x.name for x in core.graph.initializer)][0]

    bars = {"calib": Progress(count, "calibration")}

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            try:
                x = next(self.it)
            except StopIteration:
                if "quant" not in bars:         # calibration done: ranges, then Q/DQ
                    bars["calib"].close()
                    bars["quant"] = Progress(1, "quantization", unit="step")
                return None
            bars["calib"].update()
            return {input_name: x}

        def rewind(self):            # some ORT versions iterate twice; do not
            pass

    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    extra = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        "OpTypesToExcludeOutputQuantization": list(op_types or QUANT_OPS),
    }
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    tmp = tempfile.mkdtemp(prefix="jetseg_int8_")
    try:
        src = os.path.join(tmp, "fp32.onnx")
        dst = os.path.join(tmp, "int8.onnx")
        onnx.save(core, src)
        try:
            chatter = io.StringIO()      # the histogram calibrators print() to stdout
            with _QuietRootLogger(), contextlib.redirect_stdout(chatter):
                quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ,
                                op_types_to_quantize=list(op_types or QUANT_OPS),
                                per_channel=True, reduce_range=False,
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                                calibrate_method=calib, extra_options=extra)
            if chatter.getvalue().strip():
                log.debug("onnxruntime.quantization: %s", chatter.getvalue().strip())
            model = onnx.load(dst)
        except (MemoryError, ValueError, RuntimeError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise JetsegError("INT8 quantization failed: {}".format(first[:300]),
                              fix="check the --calib frames; fewer --calib-count or "
                                  "--calib-method minmax need less memory")
        finally:
            bars["calib"].close()
            if "quant" in bars:
                bars["quant"].update()
                bars["quant"].close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _drop_foreign_opsets(model)
    return model


def _drop_foreign_opsets(model):
    """ORT may declare its com.microsoft domain even when no node uses it."""
    used = set(n.domain for n in model.graph.node)
    keep = [o for o in model.opset_import if o.domain in ("", "ai.onnx") or o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def convert_fp16(core):
    """``core`` with float16 weights and compute; float32 input and logits kept."""
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as e:
        raise JetsegError("FP16 needs onnxruntime's float16 converter ({})".format(e),
                          fix="pip install 'jetseg[export]' (onnxruntime >= 1.16)")
    with Progress(1, "fp16", unit="step") as bar:
        model = convert_float_to_float16(core, keep_io_types=True)
        topo_sort(model)
        bar.update()
    return model


def topo_sort(model):
    """Order the graph's nodes so each comes after its inputs' producers (in place)."""
    g = model.graph
    ready = set(i.name for i in g.input) | set(i.name for i in g.initializer) | {""}
    pending = list(g.node)
    ordered = []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ValueError("graph has a cycle or a dangling input near node {!r}".format(
                rest[0].name))
        pending = rest
    del g.node[:]
    g.node.extend(ordered)
    return model


def calibration_batches(files, width, height, mean, std, order):
    from .parity import normalise, read_frame
    for f in files:
        yield normalise(read_frame(f, width, height), mean, std, order)


def count_qdq(model):
    ops = [n.op_type for n in model.graph.node]
    return ops.count("QuantizeLinear"), ops.count("DequantizeLinear")


def weight_axes(model):
    """{DequantizeLinear on an initializer: (dtype, axis)} - for tests and the report."""
    inits = dict((i.name, i) for i in model.graph.initializer)
    out = {}
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            axis = [a.i for a in n.attribute if a.name == "axis"]
            out[n.input[0]] = (onnx.helper.tensor_dtype_to_np_dtype(inits[n.input[0]].data_type),
                               axis[0] if axis else None,
                               np.prod(onnx.numpy_helper.to_array(inits[n.input[1]]).shape))
    return out
