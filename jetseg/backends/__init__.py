"""Inference backends: one object, one ``run`` (the shape of ONNX Runtime's session).

A backend loads a model file and exposes ``inputs`` / ``outputs`` (TensorDesc lists),
``metadata`` (the model's string key/value facts) and ``run(feeds) -> {name: ndarray}``.
Heavy libraries are imported only when a backend of that kind is opened.
"""
import os

from jetseg.errors import JetsegError

BACKENDS = ("auto", "onnxruntime", "tensorrt")


class Backend(object):
    name = "base"

    def __init__(self):
        self.inputs = []
        self.outputs = []
        self.metadata = {}
        self.providers = []

    def run(self, feeds):
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_model_file(path):
    path = str(path)
    if not os.path.exists(path):
        raise JetsegError("model file not found", path=path,
                          fix="check the --model path (export one with jetseg export)")
    if os.path.isdir(path):
        raise JetsegError("model path is a folder", path=path, fix="pass the .onnx file itself")
    if os.path.getsize(path) == 0:
        raise JetsegError("model file is empty", path=path,
                          fix="copy or export the model again")
    return path


def open_backend(path, backend="auto", **options):
    """Open ``path`` with the named backend; ``auto`` picks by file type (an .onnx on a
    Jetson with TensorRT runs as a cached engine)."""
    path = check_model_file(path)
    if backend not in BACKENDS:
        raise JetsegError("unknown backend {!r}".format(backend),
                          fix="use one of: " + ", ".join(BACKENDS))
    if backend == "auto":
        ext = os.path.splitext(path)[1].lower()
        backend = "tensorrt" if ext in (".engine", ".plan", ".trt") else "onnxruntime"
        if backend == "onnxruntime" and not options.get("providers"):
            # on a Jetson with TensorRT an ONNX runs as an engine cached beside it (built on
            # the first start, as jetson-inference does); --backend onnxruntime opts out
            import importlib.util
            if (os.path.exists("/etc/nv_tegra_release")
                    and importlib.util.find_spec("tensorrt") is not None):
                backend = "tensorrt"
    if backend == "onnxruntime":
        from jetseg.backends.onnxruntime import OrtBackend
        return OrtBackend(path, **options)
    # TensorRT: an engine file, or an .onnx built into the engine cache beside it. A missing
    # `tensorrt` module is a JetsegError naming TensorRT and how to get it.
    from jetseg.backends.tensorrt.runner import TrtBackend
    return TrtBackend(path, **options)
