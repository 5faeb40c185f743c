"""ONNX Runtime backend: CPU always; CUDA / TensorRT execution providers when installed."""
import os
import re

from jetseg.errors import JetsegError, log, option
from jetseg.core.modelinfo import TensorDesc
from jetseg.backends import Backend, default_threads

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(bool)": "bool",
}
# best first: onnxruntime-gpu's TensorRT provider (engines cached beside the model, so only
# the first start is slow), then CUDA, then the CPU that every build has
DEFAULT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider",
                     "CPUExecutionProvider")


def engine_cache_dir(model_path):
    return os.path.join(os.path.dirname(os.path.abspath(model_path)), ".jetseg-cache")


SHORT_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
               "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider"}


def parse_providers(text):
    """``"tensorrt,cuda,cpu"`` (or full provider names) -> list of provider names."""
    if not text:
        return None
    if not isinstance(text, str):
        return list(text)
    return [SHORT_NAMES.get(p.strip().lower(), p.strip()) for p in text.split(",") if p.strip()]


def choose_providers(available, requested=None, model_path="model.onnx"):
    """Providers for InferenceSession: the requested ones (all must exist) or the best
    available, with the TensorRT provider's FP16 and engine cache switched on."""
    if requested:
        names = [p if isinstance(p, str) else p[0] for p in requested]
        missing = [n for n in names if n not in available]
        if missing:
            raise JetsegError("ONNX Runtime here has no {}".format(", ".join(missing)),
                              fix="available providers: " + ", ".join(available))
        chosen = list(requested)
    else:
        chosen = [p for p in DEFAULT_PROVIDERS if p in available] or list(available)
    out = []
    for p in chosen:
        if p == "TensorrtExecutionProvider":
            p = (p, {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                     "trt_engine_cache_path": engine_cache_dir(model_path)})
        out.append(p)
    return out


def _import_ort():
    try:
        import onnxruntime
    except ImportError:
        raise JetsegError("ONNX Runtime is not installed",
                          fix="pip install 'jetseg[desktop]' (or onnxruntime-gpu on a CUDA "
                              "machine; on a Jetson NVIDIA's onnxruntime-gpu wheel for JetPack)")
    return onnxruntime


def _desc(nodes):
    out = []
    for n in nodes:
        shape = [d if isinstance(d, int) else None for d in (n.shape or [])]
        out.append(TensorDesc(n.name, shape, _ORT_TYPES.get(n.type, n.type)))
    return out


_SOURCE_REF = re.compile(r"\S+\.(?:h|cc|cpp):\d+ [\w:~<>, ]+\([^)]*\)(?: const)? ?")


def _one_line(e, limit=500):
    """ORT's message on one line, without its source file/function references."""
    text = _SOURCE_REF.sub("", " ".join(str(e).split())) or type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


class OrtBackend(Backend):
    """An ONNX model in an onnxruntime.InferenceSession.

    providers  ONNX Runtime providers in order ("tensorrt,cuda,cpu" or full names); default
               the best installed (DEFAULT_PROVIDERS)
    threads    intra-op CPU threads (default: every physical core, see default_threads)
    """
    name = "onnxruntime"

    def __init__(self, path, providers=None, threads=None):
        super(OrtBackend, self).__init__()
        ort = _import_ort()
        chosen = choose_providers(ort.get_available_providers(), parse_providers(providers),
                                  path)
        opts = ort.SessionOptions()
        self.threads = int(threads) if threads else default_threads()
        opts.intra_op_num_threads = self.threads
        # idle pool threads sleep instead of spinning: a spinning thread holds a core the
        # capture and render threads need (it cost as much CPU time as the inference did)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(path, opts, providers=chosen)
        except Exception as e:          # ORT raises its own pybind types; say it in one line
            raise JetsegError("cannot load model: {}".format(_one_line(e, 300)), path=path,
                              fix="the file is truncated, corrupt or not ONNX: copy or export "
                                  "it again (jetseg export)")
        self.path = path
        self._ort, self._opts, self._chosen = ort, opts, chosen
        self._sessions = {}
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = 4      # failures are reported as JetsegError
        self.providers = self.session.get_providers()
        self.inputs = _desc(self.session.get_inputs())
        self.outputs = _desc(self.session.get_outputs())
        meta = self.session.get_modelmeta()
        self.metadata = dict(meta.custom_metadata_map or {})
        log.debug("onnxruntime %s, providers %s", ort.__version__, self.providers)

    def _session_for(self, names):
        """The session that computes just ``names``: ONNX Runtime runs every node of a graph,
        also those no fetched output needs (a class map asked for alone still paid for the
        graph's overlay), so on the CPU a set of outputs gets its own session of a graph
        pruned to them (made on first use; the whole graph where pruning does not apply)."""
        key = frozenset(names)
        session = self._sessions.get(key)
        if session is None:
            session = self.session
            if self.providers == ["CPUExecutionProvider"] and \
                    key != frozenset(o.name for o in self.outputs):
                from jetseg.backends.onnx_proto import prune_outputs
                try:
                    data = prune_outputs(self.path, names)
                    if data is not None:
                        session = self._ort.InferenceSession(data, self._opts,
                                                             providers=self._chosen)
                except Exception as e:      # e.g. external weights: the whole graph runs
                    log.debug("no pruned session for %s: %s", names, e)
            self._sessions[key] = session
        return session

    def _run(self, feeds, names):
        try:
            values = self._session_for(names).run(names, feeds, self._run_options)
        except Exception as e:          # the feeds matched the declared inputs: ORT says why
            raise JetsegError("ONNX Runtime failed: {}".format(_one_line(e)), path=self.path,
                              fix="the inputs match the model's declared names, types and "
                                  "shapes, so the graph itself failed on them: see ONNX "
                                  "Runtime's message; try {}, or export the model "
                                  "again".format(option("providers", "cpu")))
        return dict(zip(names, values))

    def close(self):
        self.session = None
        self._sessions = {}
