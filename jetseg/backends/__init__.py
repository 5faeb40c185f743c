"""Inference backends: one object, one ``run`` (the shape of ONNX Runtime's session).

A backend loads a model file and exposes ``inputs`` / ``outputs`` (TensorDesc lists),
``metadata`` (the model's string key/value facts) and ``run(feeds, names) -> {name:
ndarray}``. ``Backend.run`` checks the feeds against ``inputs`` (names, dtype, shape) and the
names against ``outputs`` once, for every backend, then calls the backend's ``_run``.
Heavy libraries are imported only when a backend of that kind is opened.
"""
import os

from jetseg.errors import JetsegError, log, option

BACKEND_NAMES = ("auto", "onnxruntime", "openvino", "tensorrt")
# the options each backend takes (open_backend refuses any other name)
ORT_OPTIONS = ("providers", "threads")
OV_OPTIONS = ("threads", "precision")
TRT_OPTIONS = ("precision", "workspace_mb", "dla_core", "timing_cache", "rebuild", "memory",
               "reuse_outputs")
ENGINE_EXTS = (".engine", ".plan", ".trt")


class Backend(object):
    name = "base"
    what = "model"          # what error messages call the loaded thing

    def __init__(self):
        self.inputs = []
        self.outputs = []
        self.metadata = {}
        self.providers = []
        self.path = None

    def run(self, feeds, names=None):
        """Outputs ``names`` (default: all) for ``feeds`` ({input name: array})."""
        feeds, names = self.check_run(feeds, names)
        return self._run(feeds, names)

    def _run(self, feeds, names):
        raise NotImplementedError

    def check_run(self, feeds, names=None):
        """(feeds as arrays, output names), or one JetsegError naming the first mismatch."""
        import numpy as np
        what = self.what
        if not isinstance(feeds, dict):
            raise JetsegError("feeds must be a dict of input name -> array",
                              fix="pass {{{!r}: array}}".format(self.inputs[0].name
                                                                 if self.inputs else "input"))
        known = [t.name for t in self.inputs]
        extra = [n for n in feeds if n not in known]
        if extra:
            raise JetsegError("the {} has no input {!r}".format(what, extra[0]), path=self.path,
                              fix="its inputs: " + ", ".join(known))
        out = {}
        for t in self.inputs:
            if t.name not in feeds:
                raise JetsegError("no value for {} input {!r}".format(what, t.name),
                                  path=self.path, fix="feed every input: " + ", ".join(known))
            value = out[t.name] = np.asarray(feeds[t.name])
            try:
                want = np.dtype(t.dtype)
            except TypeError:
                want = None         # a type numpy has no name for: the backend judges
            if want is not None and value.dtype != want:
                raise JetsegError("input {!r} is {}; the {} takes {}".format(
                    t.name, value.dtype, what, want), path=self.path,
                    fix="feed {} values".format(want))
            if t.shape is not None and (len(t.shape) != value.ndim or any(
                    isinstance(w, int) and w > 0 and w != g
                    for w, g in zip(t.shape, value.shape))):
                raise JetsegError("input {!r} has shape {}; the {} takes {}".format(
                    t.name, tuple(value.shape), what, t.shape_text), path=self.path,
                    fix="feed the size the {} was made for (or export/build it for this "
                        "size)".format(what))
        if names is None:
            return out, [o.name for o in self.outputs]
        names = list(names)
        outputs = [o.name for o in self.outputs]
        for n in names:
            if n not in outputs:
                raise JetsegError("the {} has no output {!r}".format(what, n), path=self.path,
                                  fix="its outputs: " + ", ".join(outputs))
        return out, names

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


SYSFS_CPU = "/sys/devices/system/cpu"


def cpu_cores():
    """Physical CPU cores this process may run on: hyperthreads of one core count once (as
    ONNX Runtime's and OpenVINO's own defaults do), from Linux's sysfs; else logical CPUs."""
    try:
        cpus = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return os.cpu_count() or 1
    cores = set()
    for c in cpus:
        try:
            with open(os.path.join(SYSFS_CPU, "cpu{}".format(c), "topology",
                                   "thread_siblings_list")) as f:
                cores.add(f.read().strip())
        except (IOError, OSError):
            cores.add("cpu{}".format(c))
    return len(cores) or 1


def default_threads():
    """CPU inference threads when none are asked for: every physical core. Measured on a
    quiet 2-core x86 (issue 17, engines/camvid.onnx, 480x360 clip), inference on both cores
    against one core left to the capture and render threads: full pipeline 57 against 44
    fps, file in and file out 52 against 38 (ONNX Runtime; OpenVINO alike). The capture and
    render threads' work (about 3 ms a frame) costs less than the second inference thread
    gains. On a machine busy with other work, fewer threads (``--threads``) can do better:
    a parallel section waits for its slowest thread."""
    return cpu_cores()


def check_model_file(path):
    path = str(path)
    if not os.path.exists(path):
        raise JetsegError("model file not found", path=path,
                          fix="check the path given as {}; export one with jetseg export"
                          .format(option("model")))
    if os.path.isdir(path):
        raise JetsegError("model path is a folder", path=path, fix="pass the .onnx file itself")
    if os.path.getsize(path) == 0:
        raise JetsegError("model file is empty", path=path,
                          fix="copy or export the model again")
    return path


def _jetson_with_tensorrt():
    import importlib.util
    return (os.path.exists("/etc/nv_tegra_release")
            and importlib.util.find_spec("tensorrt") is not None)


X86 = ("x86_64", "amd64", "i386", "i686", "x86")


def _openvino_cpu():
    """(True, why) when OpenVINO serves this CPU: installed, an x86 CPU (OpenVINO's own CPU
    plugin; on ARM auto keeps ONNX Runtime) and CPU among its devices; else (False, why)."""
    import importlib.util
    import platform
    if importlib.util.find_spec("openvino") is None:
        return False, "OpenVINO is not installed (pip install 'jetseg[openvino]': INT8 " \
                      "models run several times faster with it on x86 CPUs)"
    machine = platform.machine()
    if machine.lower() not in X86:
        return False, "OpenVINO is installed but this CPU is {}, not x86".format(machine)
    from jetseg.backends.openvino import cpu_devices
    if "CPU" not in cpu_devices():
        return False, "OpenVINO is installed but lists no CPU device"
    return True, "OpenVINO is installed and serves this x86 CPU"


def auto_backend(path=None, providers=None):
    """(backend, why) that ``auto`` picks for ``path`` (None: an .onnx file) on this
    machine: TensorRT for an engine file and on a Jetson with TensorRT (an .onnx is built
    into a cached engine on the first start, as jetson-inference does); ONNX Runtime when
    providers were asked for; else OpenVINO where it serves this CPU; else ONNX Runtime."""
    if path is not None and os.path.splitext(str(path))[1].lower() in ENGINE_EXTS:
        return "tensorrt", "a TensorRT engine file"
    if providers:
        return "onnxruntime", "ONNX Runtime providers were asked for"
    if _jetson_with_tensorrt():
        return "tensorrt", "a Jetson with TensorRT (the .onnx is built into a cached engine)"
    ok, why = _openvino_cpu()
    return ("openvino" if ok else "onnxruntime"), why


def choose_backend(path, backend="auto", providers=None):
    """The backend ``backend`` names for ``path``; ``auto`` as auto_backend decides."""
    if backend not in BACKEND_NAMES:
        raise JetsegError("unknown backend {!r}".format(backend),
                          fix="use one of: " + ", ".join(BACKEND_NAMES))
    if backend != "auto":
        return backend
    return auto_backend(path, providers)[0]


OPTIONS = {"onnxruntime": ORT_OPTIONS, "openvino": OV_OPTIONS, "tensorrt": TRT_OPTIONS}


def open_backend(path, backend="auto", **options):
    """Open ``path`` with the named backend (see choose_backend). ``options``: the names in
    OPTIONS; a name no backend takes is an error, one for another backend is dropped (with
    a warning when it was set)."""
    every = sorted(set(ORT_OPTIONS + OV_OPTIONS + TRT_OPTIONS))
    unknown = sorted(k for k in options if k not in every)
    if unknown:
        raise JetsegError("unknown backend option(s): {}".format(", ".join(unknown)),
                          fix="options are " + ", ".join(every))
    path = check_model_file(path)
    auto = backend == "auto"
    backend = choose_backend(path, backend, options.get("providers"))
    if auto and backend == "openvino":
        from jetseg.backends.openvino import OvCannotRun
        try:
            return _open(path, backend, options)
        except OvCannotRun as e:
            log.warning("%s; using onnxruntime", e.message)
            backend = "onnxruntime"
    return _open(path, backend, options)


def _open(path, backend, options):
    if backend != "tensorrt" and os.path.splitext(path)[1].lower() in ENGINE_EXTS:
        raise JetsegError("a TensorRT engine file runs on TensorRT only, not {}".format(
            backend), path=path, fix="use {} (or auto), or give {} the .onnx the engine was "
                                     "built from".format(option("backend", "tensorrt"), backend))
    mine = OPTIONS[backend]
    for k in sorted(options):
        v = options[k]
        if k not in mine and v is not None and v is not False and v != "auto":
            log.warning("option %s=%r does not apply to %s: ignored", k, v, backend)
    options = dict((k, v) for k, v in options.items() if k in mine)
    if backend == "onnxruntime":
        from jetseg.backends.onnxruntime import OrtBackend
        return OrtBackend(path, **options)
    if backend == "openvino":
        from jetseg.backends.openvino import OvBackend
        return OvBackend(path, **options)
    # TensorRT: an engine file, or an .onnx built into the engine cache beside it. A missing
    # `tensorrt` module is a JetsegError naming TensorRT and how to get it.
    from jetseg.backends.tensorrt import runner
    return runner.open_tensorrt(path, **options)
