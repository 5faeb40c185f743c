"""OpenVINO backend: Intel's CPU engine for x86 boards and desktops (``pip install
'jetseg[openvino]'``); Q/DQ INT8 models run in INT8 on it (ONNX Runtime's CPU path runs them
slower than FP32), and bf16 where the CPU has it (``precision``).

The ONNX file is read by OpenVINO's ONNX frontend (only that one: a broken file gets the
ONNX parser's answer, not every frontend's) and compiled for the CPU with the LATENCY hint
(one stream, one frame at a time, as a camera loop runs). ``threads`` maps to
INFERENCE_NUM_THREADS (default: every physical core). OpenVINO keeps no ONNX
``metadata_props``, so they are read from the file itself (jetseg.backends.onnx_proto).
OpenVINO computes every output a compiled model has, so ``run(feeds, names)`` runs a model
compiled with just ``names`` as outputs (compiled on first use, one per set of names; a
Segmenter asks for one or two sets).
"""
import re

from jetseg.backends import Backend, default_threads
from jetseg.backends.onnx_proto import read_onnx_metadata
from jetseg.core.modelinfo import TensorDesc
from jetseg.errors import JetsegError, log, option

DEVICE = "CPU"
# precision: "fp32" (default) = f32 arithmetic, the exported graph's own numbers (what its
# parity check and mIoU were measured with, and what ONNX Runtime gives); "bf16" / "fp16" /
# "auto" (the CPU's own default: bf16 where it has AMX or AVX512-BF16, f32 elsewhere) trade
# exactness for speed on CPUs that have them.
PRECISIONS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "auto": None}

_SOURCE_REF = re.compile(r"(?:Exception from \S+:\d+:|Check '.*?' failed at \S+:\d+:)\s*")


class OvCannotRun(JetsegError):
    """OpenVINO read the file but cannot convert or compile its graph (``auto`` then falls
    back to ONNX Runtime)."""


def _one_line(e, limit=500):
    """OpenVINO's message on one line, without its source file references."""
    text = _SOURCE_REF.sub("", " ".join(str(e).split())).strip() or type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise JetsegError("OpenVINO is not installed",
                          fix="pip install 'jetseg[openvino]' (OpenVINO from PyPI), or use "
                              "{}".format(option("backend", "onnxruntime")))
    return openvino


_devices = []


def cpu_devices():
    """OpenVINO's devices here ([] without OpenVINO, or when it cannot list them); asked
    once per process."""
    if not _devices:
        try:
            import openvino
            _devices.append(list(openvino.Core().available_devices))
        except Exception as e:      # ImportError, or a broken plugin: auto falls back to ORT
            log.debug("openvino devices: %s", e)
            _devices.append([])
    return _devices[0]


def _numpy_dtype(element_type):
    try:
        return str(element_type.to_dtype())
    except Exception:               # bf16 and other types numpy has no name for
        return element_type.get_type_name()


def _desc(ports):
    out = []
    for p in ports:
        shape = [d.get_length() if d.is_static else None for d in p.get_partial_shape()]
        out.append(TensorDesc(p.get_any_name(), shape, _numpy_dtype(p.get_element_type())))
    return out


class OvBackend(Backend):
    """An ONNX model compiled by OpenVINO for the CPU.

    threads    INFERENCE_NUM_THREADS (default: every physical core, see default_threads)
    precision  "fp32" (default: the graph's own numbers), "bf16", "fp16" or "auto" (the
               CPU's own default; see PRECISIONS); Q/DQ INT8 models run in INT8 either way
    """
    name = "openvino"

    def __init__(self, path, threads=None, precision=None):
        super(OvBackend, self).__init__()
        ov = import_openvino()
        hint = PRECISIONS.get(precision or "fp32", False)
        if hint is False:
            raise JetsegError("OpenVINO precision {!r} is not known".format(precision),
                              fix="use one of: " + ", ".join(sorted(PRECISIONS)) + (
                                  " (a Q/DQ INT8 model, jetseg export --precision int8, runs "
                                  "in INT8 on OpenVINO by itself)" if precision == "int8"
                                  else ""))
        self.path = path
        try:
            self.metadata = read_onnx_metadata(path)      # also proves the file is whole
        except JetsegError as e:
            raise JetsegError("cannot load model: " + e.message, path=path,
                              fix="the file is truncated, corrupt or not ONNX: copy or export "
                                  "it again (jetseg export)")
        self.core = ov.Core()
        self.threads = int(threads) if threads else default_threads()
        self.config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": self.threads}
        if hint:
            self.config["INFERENCE_PRECISION_HINT"] = hint
        try:
            frontend = ov.frontend.FrontEndManager().load_by_framework("onnx")
            self.model = frontend.convert(frontend.load(path))
        except Exception as e:          # OpenVINO's GeneralFailure etc.: one line
            raise OvCannotRun("cannot load model: {}".format(_one_line(e, 300)), path=path,
                              fix="the file is truncated, corrupt or not ONNX: copy or export "
                                  "it again (jetseg export)")
        self.inputs = _desc(self.model.inputs)
        self.outputs = _desc(self.model.outputs)
        self._requests = {}
        self._request(tuple(o.name for o in self.outputs))    # compile errors show here
        compiled = self._requests[tuple(o.name for o in self.outputs)][0]
        prop = compiled.get_property
        n = prop("INFERENCE_NUM_THREADS")
        self.providers = ["{} ({}, {}, {} thread{})".format(
            DEVICE, str(prop("PERFORMANCE_HINT")).split(".")[-1],
            prop("INFERENCE_PRECISION_HINT").get_type_name(), n, "" if n == 1 else "s")]
        log.debug("openvino %s: %s", ov.__version__, self.providers[0])

    def _request(self, names):
        """(compiled model, infer request) with exactly ``names`` as outputs."""
        got = self._requests.get(names)
        if got is not None:
            return got
        model = self.model
        if list(names) != [o.name for o in self.outputs]:
            import openvino as ov
            ports = dict((o.get_any_name(), o) for o in self.model.outputs)
            model = ov.Model([ports[n].get_node().input_value(0) for n in names],
                             self.model.get_parameters(), "jetseg-" + "+".join(names))
        try:
            compiled = self.core.compile_model(model, DEVICE, self.config)
        except Exception as e:
            raise OvCannotRun("OpenVINO cannot compile the model for the {}: {}".format(
                DEVICE, _one_line(e, 300)), path=self.path,
                fix="try {}, or export the model again".format(option("backend", "onnxruntime")))
        got = self._requests[names] = (compiled, compiled.create_infer_request())
        return got

    def _run(self, feeds, names):
        compiled, request = self._request(tuple(names))
        try:
            # the feeds are read in place (no copy); the outputs live in the request's own
            # buffers, which the next run overwrites: hand out copies
            request.infer(feeds, share_inputs=True, share_outputs=True)
            return dict((n, request.get_tensor(n).data.copy()) for n in names)
        except Exception as e:          # the feeds matched the declared inputs: OpenVINO says why
            raise JetsegError("OpenVINO failed: {}".format(_one_line(e)), path=self.path,
                              fix="the inputs match the model's declared names, types and "
                                  "shapes, so the graph itself failed on them: see OpenVINO's "
                                  "message; try {}, or export the model again".format(
                                      option("backend", "onnxruntime")))

    def close(self):
        self._requests = {}
        self.model = None
