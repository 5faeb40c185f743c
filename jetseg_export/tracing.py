"""The bare network (float NCHW in, logits out) -> ONNX, with PyTorch's two exporters.

    model, exporter_name = to_onnx(net, width, height, opset)

First the TorchScript exporter (fast, the one every TensorRT recipe used); where it cannot
trace the net (an aten op it has no symbolic for, e.g. ``nn.ChannelShuffle``), PyTorch's newer
dynamo-based exporter (``torch.onnx.export(..., dynamo=True)``, needs ``onnxscript``). Both run
with adaptive pooling routed through fixed slices (pooling.py). The dynamo exporter may write
a newer opset than asked; lowering.py brings it down to the target's. What the exporters
print (TorchScript dumps the whole graph on an error) is kept off the terminal and shown
with ``--debug``.
"""
import contextlib
import importlib.util
import inspect
import io
import logging
import os
import re
import sys
import tempfile
import warnings

import onnx

from jetseg.errors import JetsegError, log

from .pooling import static_adaptive_pooling

EXPORTERS = ("torchscript", "dynamo")


class _Captured(object):
    text = ""


@contextlib.contextmanager
def quiet_output():
    """Send what native code and Python print to fds 1 and 2 into ``.text``."""
    box = _Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as tmp:
        py = io.StringIO()
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            with contextlib.redirect_stdout(py), contextlib.redirect_stderr(py):
                yield box
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            box.text = py.getvalue() + tmp.read().decode("utf-8", "replace")


def _export_params():
    import torch
    try:
        return inspect.signature(torch.onnx.export).parameters
    except (TypeError, ValueError):
        return {}


def dynamo_available():
    return "dynamo" in _export_params() and importlib.util.find_spec("onnxscript") is not None


def _first_line(e):
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # the dynamo exporter leads with a generic banner; its cause comes after
    for ln in lines:
        if not ln.startswith(("Failed to convert the exported program", "Failed to export")):
            return ln[:300]
    return (lines[0] if lines else type(e).__name__)[:300]


def _torchscript(net, dummy, opset):
    import torch
    f = io.BytesIO()
    kw = {"dynamo": False} if "dynamo" in _export_params() else {}
    torch.onnx.export(net, dummy, f, opset_version=opset, input_names=["input"],
                      output_names=["logits"], do_constant_folding=True, **kw)
    return onnx.load_from_string(f.getvalue())


def _dynamo(net, dummy, opset):
    import torch
    # its version converter warns through logging when it leaves a newer opset (lowering.py
    # converts what it can); what it says is in --debug's captured output anyway
    chatty = [logging.getLogger(n) for n in ("onnxscript", "torch.onnx")]
    levels = [lg.level for lg in chatty]
    for lg in chatty:
        lg.setLevel(logging.ERROR)
    try:
        prog = torch.onnx.export(net, (dummy,), None, dynamo=True, opset_version=opset,
                                 input_names=["input"], output_names=["logits"], verbose=False)
    finally:
        for lg, level in zip(chatty, levels):
            lg.setLevel(level)
    return prog.model_proto


def to_onnx(net, width, height, opset, exporters=EXPORTERS):
    """Trace ``net`` at 1x3xHxW -> (ModelProto, name of the exporter that made it)."""
    import torch
    dummy = torch.zeros(1, 3, height, width)
    tried = []
    for name in exporters:
        if name == "dynamo" and not dynamo_available():
            tried.append("dynamo exporter unavailable (needs torch >= 2.5 and onnxscript)")
            break
        fn = _torchscript if name == "torchscript" else _dynamo
        try:
            with quiet_output() as out, static_adaptive_pooling(), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = fn(net, dummy, opset)
        except Exception as e:
            log.debug("%s exporter output:\n%s", name, out.text.strip()[-4000:])
            tried.append("{} exporter: {}".format(name, _first_line(e)))
            log.info("PyTorch's %s exporter cannot export the net: %s", name, _first_line(e))
            continue
        if out.text.strip():
            log.debug("%s exporter output:\n%s", name, out.text.strip()[-4000:])
        log.info("exported with PyTorch's %s exporter%s", name, " (fallback)" if tried else "")
        return model, name
    raise JetsegError("PyTorch cannot export the net at opset {}: {}".format(
        opset, "; ".join(tried)), fix="replace the layer it names, or try a newer --target "
        "(higher opset)")


__all__ = ["to_onnx", "quiet_output", "dynamo_available", "EXPORTERS"]
