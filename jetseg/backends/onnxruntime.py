"""ONNX Runtime backend: CPU always; CUDA / TensorRT execution providers when installed."""
from ..errors import JetsegError, log
from ..modelinfo import TensorDesc
from . import Backend

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(bool)": "bool",
}
# best first; TensorRT EP builds engines at start-up (minutes), so it is opt-in
DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


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


class OrtBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path, providers=None, threads=None, **unused):
        super(OrtBackend, self).__init__()
        ort = _import_ort()
        available = ort.get_available_providers()
        if providers:
            missing = [p for p in providers if p not in available]
            if missing:
                raise JetsegError("ONNX Runtime here has no {}".format(", ".join(missing)),
                                  fix="available providers: " + ", ".join(available))
            chosen = list(providers)
        else:
            chosen = [p for p in DEFAULT_PROVIDERS if p in available] or available
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(path, opts, providers=chosen)
        except Exception as e:          # ORT raises its own pybind types; say it in one line
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise JetsegError("cannot load model: {}".format(first[:300]), path=path,
                              fix="the file is truncated, corrupt or not ONNX: copy or export "
                                  "it again (jetseg export)")
        self.path = path
        self.providers = self.session.get_providers()
        self.inputs = _desc(self.session.get_inputs())
        self.outputs = _desc(self.session.get_outputs())
        meta = self.session.get_modelmeta()
        self.metadata = dict(meta.custom_metadata_map or {})
        log.debug("onnxruntime %s, providers %s", ort.__version__, self.providers)

    def run(self, feeds, names=None):
        names = names or [o.name for o in self.outputs]
        try:
            values = self.session.run(names, feeds)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise JetsegError("inference failed: {}".format(first[:300]), path=self.path,
                              fix="check that the model's input size and type match its "
                                  "metadata (pass --input-size for models with dynamic size)")
        return dict(zip(names, values))

    def close(self):
        self.session = None
