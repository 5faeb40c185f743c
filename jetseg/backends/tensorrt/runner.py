"""TensorRT backend: jetseg engines (or plain plans) run from CUDA buffers, TRT 8.2 to 10+.

Same shape as the ONNX Runtime backend: ``inputs``, ``outputs``, ``metadata``, ``run``.
An ``.onnx`` path goes through the engine cache (built on first use, see jetseg.engine).

Which TensorRT API is used is found by feature detection, not version numbers:
- named tensors (TRT 8.5+, the only API from 10): ``num_io_tensors``, ``get_tensor_name``,
  ``get_tensor_mode``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``;
- binding indices (TRT 8.2/8.4, the Nano's JetPack 4.6): ``num_bindings``,
  ``get_binding_name``, ``binding_is_input``, ``set_binding_shape``, ``execute_async_v2``.

Per frame: each input is copied once into its pinned (or GPU-mapped) buffer, the copies and
the inference are queued on one CUDA stream, outputs come back into buffers allocated when
the engine was opened, and events time the GPU part (``last_gpu_ms``). Outputs are handed
out as copies by default because a threaded pipeline keeps results for several frames;
``reuse_outputs=True`` hands out the buffers themselves (valid until the next ``run``).
"""
import os

from jetseg.errors import JetsegError, log
from jetseg.core.modelinfo import TensorDesc
from jetseg.backends import Backend

TRT_FIX = ("on a Jetson TensorRT comes with JetPack: sudo apt-get install python3-libnvinfer "
           "(a virtualenv needs --system-site-packages; in Docker use an l4t-tensorrt or "
           "l4t-jetpack image); on a desktop without it run the .onnx model with "
           "--backend onnxruntime")

_LOGGER = []


def import_tensorrt():
    """``import tensorrt`` or a JetsegError that says how to get it."""
    try:
        import tensorrt
    except ImportError as e:
        raise JetsegError("TensorRT's Python module is not installed here ({})".format(e),
                          fix=TRT_FIX)
    return tensorrt


def trt_logger(trt):
    """One logger for the process (TensorRT's recommendation), warnings and up."""
    if not _LOGGER:
        _LOGGER.append(trt.Logger(trt.Logger.WARNING))
    return _LOGGER[0]


def fast_precisions(compute_capability):
    """(fast fp16, fast int8) from the compute capability, for when no TensorRT builder can
    be asked (and TensorRT 11 has no platform_has_fast_* any more). 5.3 = Nano/TX1,
    6.2 = TX2, 7.2 = Xavier, 8.7 = Orin."""
    cc = tuple(compute_capability or (0, 0))
    fp16 = cc in ((5, 3), (6, 0), (6, 2)) or cc >= (7, 0)
    int8 = cc == (6, 1) or cc >= (7, 0)
    return fp16, int8


def platform_facts(trt=None, rt=None):
    """What an engine is tied to here: {"tensorrt", "gpu", "compute_capability", "cuda",
    "integrated", "can_map_host_memory"} (TensorRT and CUDA both needed)."""
    from jetseg.backends import cuda
    trt = trt or import_tensorrt()
    rt = rt or cuda.runtime()
    props = rt.device_properties()
    facts = dict(props)
    facts.update({"tensorrt": getattr(trt, "__version__", "unknown"), "gpu": props["name"],
                  "cuda": cuda.version_text(rt.runtime_version())})
    return facts


# ---- the two API generations -------------------------------------------------------------
def _dims(shape):
    return tuple(int(d) for d in shape)


class NamedTensorIO(object):
    """TensorRT 8.5+ named-tensor API (``execute_async_v3``)."""
    kind = "named tensors (execute_async_v3)"

    def __init__(self, trt, engine, context):
        self.trt, self.engine, self.context = trt, engine, context

    def tensors(self):
        out = []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            is_input = self.engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT
            out.append((name, is_input, _dims(self.engine.get_tensor_shape(name)),
                        self.engine.get_tensor_dtype(name)))
        return out

    def set_input_shape(self, name, shape):
        if not self.context.set_input_shape(name, tuple(shape)):
            raise JetsegError("the engine does not accept input {} of shape {}".format(
                name, tuple(shape)), fix="feed the size the engine was built for")

    def shape(self, name):
        return _dims(self.context.get_tensor_shape(name))

    def set_address(self, name, ptr):
        self.context.set_tensor_address(name, int(ptr))

    def execute(self, stream):
        return self.context.execute_async_v3(stream)


class BindingIO(object):
    """TensorRT 8.2/8.4 binding-index API (``execute_async_v2``)."""
    kind = "bindings (execute_async_v2)"

    def __init__(self, trt, engine, context):
        self.trt, self.engine, self.context = trt, engine, context
        self.index = dict((engine.get_binding_name(i), i) for i in range(engine.num_bindings))
        self.bindings = [0] * engine.num_bindings

    def tensors(self):
        out = []
        for i in range(self.engine.num_bindings):
            out.append((self.engine.get_binding_name(i), bool(self.engine.binding_is_input(i)),
                        _dims(self.engine.get_binding_shape(i)),
                        self.engine.get_binding_dtype(i)))
        return out

    def set_input_shape(self, name, shape):
        if not self.context.set_binding_shape(self.index[name], tuple(shape)):
            raise JetsegError("the engine does not accept input {} of shape {}".format(
                name, tuple(shape)), fix="feed the size the engine was built for")

    def shape(self, name):
        return _dims(self.context.get_binding_shape(self.index[name]))

    def set_address(self, name, ptr):
        self.bindings[self.index[name]] = int(ptr)

    def execute(self, stream):
        return self.context.execute_async_v2(list(self.bindings), stream)


def make_io(trt, engine, context):
    """The named-tensor API where the engine and context have it, else bindings."""
    if (hasattr(engine, "num_io_tensors") and hasattr(context, "execute_async_v3")
            and hasattr(context, "set_tensor_address")):
        return NamedTensorIO(trt, engine, context)
    if hasattr(engine, "num_bindings") and hasattr(context, "execute_async_v2"):
        return BindingIO(trt, engine, context)
    raise JetsegError("this TensorRT ({}) has neither the named-tensor nor the binding API "
                      "jetseg knows".format(getattr(trt, "__version__", "?")),
                      fix="use TensorRT 8.2 to 10 (JetPack 4.6 to 6)")


_DTYPE_NAMES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32",
                "INT64": "int64", "BOOL": "bool", "UINT8": "uint8"}


def numpy_dtype(trt, dtype):
    """TensorRT DataType -> numpy dtype name (trt.nptype where it knows the type)."""
    import numpy as np
    try:
        return np.dtype(trt.nptype(dtype)).name
    except (TypeError, KeyError, AttributeError, ValueError):
        key = str(dtype).rsplit(".", 1)[-1].upper()
        if key in _DTYPE_NAMES:
            return _DTYPE_NAMES[key]
        raise JetsegError("tensor type {} is not supported by jetseg".format(dtype),
                          fix="export the model with float32/uint8 inputs and "
                              "float/int outputs")


# ---- buffers -----------------------------------------------------------------------------
class _Slot(object):
    """One I/O tensor's memory: "mapped" (zero-copy), "pinned" (+ device buffer) or
    "pageable" (device buffer + ordinary host array: Tegra outputs without I/O coherency)."""

    def __init__(self, rt, shape, dtype, mode):
        import numpy as np
        from jetseg.backends import cuda
        self.rt, self.shape, self.dtype, self.mode = rt, tuple(shape), np.dtype(dtype), mode
        self.host = self.dev = None
        if mode == "pageable":
            self.array = np.empty(self.shape, self.dtype)
        else:
            self.host = cuda.HostBuffer(self.shape, self.dtype, mapped=(mode == "mapped"),
                                        rt=rt)
            self.array = self.host.array
        if mode == "mapped":
            self.device_ptr = self.host.device_ptr
        else:
            self.dev = cuda.DeviceBuffer(self.array.nbytes, rt=rt)
            self.device_ptr = self.dev.ptr

    def upload(self, stream):
        if self.dev is not None:
            self.dev.copy_from(self.array, stream)

    def download(self, stream):
        if self.dev is not None:
            self.dev.copy_to(self.array, stream)

    def free(self):
        if self.dev is not None:
            self.dev.free()
        if self.host is not None:
            self.host.free()
        self.array = None


class TrtBackend(Backend):
    """A TensorRT engine behind the Backend interface.

    path          .engine/.plan (jetseg header or plain plan) or .onnx (engine cache)
    precision     for an .onnx: fp16 (default where the GPU has fast fp16), fp32 or int8
    workspace_mb, dla_core, timing_cache   for an .onnx build (see jetseg.build)
    rebuild       rebuild a cached engine even when it is up to date
    memory        "auto" (by GPU, see jetseg.cuda.memory_plan), "mapped" or "pinned"
    reuse_outputs hand out the output buffers themselves (valid until the next run)
    """
    name = "tensorrt"

    def __init__(self, path, precision=None, workspace_mb=None, dla_core=None,
                 timing_cache=None, rebuild=False, memory="auto", reuse_outputs=False,
                 **unused):
        super(TrtBackend, self).__init__()
        from jetseg.backends.tensorrt import engine_file as eng
        trt = import_tensorrt()
        facts = platform_facts(trt)
        self.path = str(path)
        if os.path.splitext(self.path)[1].lower() == ".onnx":
            if precision is None:
                precision = "fp16" if fast_precisions(facts["compute_capability"])[0] \
                    else "fp32"
            from jetseg.backends.tensorrt.build import build_engine

            def build(onnx_path, out, precision):
                build_engine(onnx_path, precision=precision, workspace_mb=workspace_mb,
                             timing_cache=timing_cache, dla_core=dla_core, out=out,
                             facts=facts)
            self.engine_path = eng.ensure_engine(self.path, precision, facts, build,
                                                 rebuild=rebuild)
        else:
            self.engine_path = self.path
        header, plan = eng.read_engine(self.engine_path)
        if header is not None:
            eng.check_engine(header, facts, self.engine_path)
        else:
            log.info("%s is a plain TensorRT plan (no jetseg header): its TensorRT version "
                     "and GPU cannot be checked, and labels/colours come from --labels and "
                     "--colors", self.engine_path)
        self.header = header
        runtime = trt.Runtime(trt_logger(trt))
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise JetsegError("TensorRT could not load this engine (TensorRT's messages above "
                              "say why: usually another TensorRT version or GPU built it, or "
                              "the file is damaged)", path=self.engine_path,
                              fix="rebuild it on this device: `{}`".format(
                                  eng.rebuild_command(header, self.engine_path)))
        self._runtime = runtime
        meta = dict((header or {}).get("metadata") or {})
        if header is not None and header.get("precision"):
            import json
            meta["jetseg.precision"] = json.dumps(header["precision"])
        self._setup(trt, engine, None, None, facts, meta, memory, reuse_outputs)

    @classmethod
    def from_engine(cls, trt, engine, rt=None, props=None, metadata=None, memory="auto",
                    reuse_outputs=False, context=None):
        """Wrap an already deserialized engine (self-test, and the API-shape tests that
        pass recording fakes of both TensorRT API generations)."""
        self = cls.__new__(cls)
        Backend.__init__(self)
        self.path = self.engine_path = "<engine>"
        self.header = None
        self._runtime = None
        self._setup(trt, engine, context, rt, props, metadata or {}, memory, reuse_outputs)
        return self

    def _setup(self, trt, engine, context, rt, props, metadata, memory, reuse_outputs):
        from jetseg.backends import cuda
        self.trt, self.engine = trt, engine
        self.rt = rt or cuda.runtime()
        self.props = props or self.rt.device_properties()
        self.context = context or engine.create_execution_context()
        if self.context is None:
            raise JetsegError("TensorRT could not create an execution context (out of GPU "
                              "memory?)", path=self.path,
                              fix="close other GPU programs, or build with a smaller "
                                  "--workspace")
        if memory not in ("auto", "mapped", "pinned"):
            raise JetsegError("unknown memory placement {!r}".format(memory),
                              fix="use auto, mapped (zero-copy) or pinned (copies)")
        self.io = make_io(trt, engine, self.context)
        self.metadata = metadata
        self.memory = memory
        self.reuse_outputs = reuse_outputs
        self.providers = ["TensorRT {} {}".format(getattr(trt, "__version__", ""),
                                                  self.io.kind)]
        self._tensors = self.io.tensors()
        for name, is_input, shape, dtype in self._tensors:
            desc = TensorDesc(name, [d if d >= 0 else None for d in shape],
                              numpy_dtype(trt, dtype))
            (self.inputs if is_input else self.outputs).append(desc)
        self._slots = {}
        self._shapes = None
        self.stream = cuda.Stream(rt=self.rt)
        self._start, self._end = cuda.Event(rt=self.rt), cuda.Event(rt=self.rt)
        self.last_gpu_ms = None
        if all(d >= 0 for _, _, shape, _ in self._tensors for d in shape):
            self._allocate(dict((n, s) for n, i, s, _ in self._tensors if i))
        log.debug("TensorRT %s via %s; memory %s", getattr(trt, "__version__", "?"),
                  self.io.kind, dict((n, s.mode) for n, s in self._slots.items()))

    def _mode(self, role):
        from jetseg.backends import cuda
        if self.memory == "auto":
            return cuda.memory_plan(self.props, role)
        if self.memory == "mapped" and not self.props.get("can_map_host_memory"):
            return "pinned"
        return self.memory

    def _allocate(self, input_shapes):
        """(Re)allocate every buffer for these input shapes, once per new shape set."""
        for slot in self._slots.values():
            slot.free()
        self._slots = {}
        declared = dict((n, s) for n, _, s, _ in self._tensors)
        for name, shape in input_shapes.items():
            if any(d < 0 for d in declared[name]):      # dynamic: tell TensorRT every size
                self.io.set_input_shape(name, shape)
        for name, is_input, _, _ in self._tensors:
            shape = input_shapes[name] if is_input else self.io.shape(name)
            if any(d < 0 for d in shape):
                raise JetsegError("output {} still has an unknown shape {} after the inputs "
                                  "were set".format(name, shape), path=self.path,
                                  fix="rebuild the engine with fixed input sizes")
            desc = (self.inputs if is_input else self.outputs)
            dtype = [t.dtype for t in desc if t.name == name][0]
            slot = _Slot(self.rt, shape, dtype, self._mode("input" if is_input else "output"))
            self._slots[name] = slot
            self.io.set_address(name, slot.device_ptr)
        self._shapes = dict(input_shapes)

    def run(self, feeds, names=None):
        import numpy as np
        shapes = {}
        for t in self.inputs:
            if t.name not in feeds:
                raise JetsegError("no value for engine input {!r}".format(t.name),
                                  path=self.path, fix="feed every input: " +
                                  ", ".join(i.name for i in self.inputs))
            shapes[t.name] = tuple(np.shape(feeds[t.name]))
            want = t.shape
            if len(want) != len(shapes[t.name]) or any(
                    w is not None and w != g for w, g in zip(want, shapes[t.name])):
                raise JetsegError("input {!r} has shape {}; the engine takes {}".format(
                    t.name, shapes[t.name], want), path=self.path,
                    fix="feed the size the engine was built for (or rebuild it)")
        if shapes != self._shapes:
            self._allocate(shapes)
        stream = self.stream.handle
        for t in self.inputs:
            slot = self._slots[t.name]
            try:
                np.copyto(slot.array, feeds[t.name], casting="same_kind")
            except TypeError as e:
                raise JetsegError("input {!r}: {}".format(t.name, e), path=self.path,
                                  fix="feed {} values".format(t.dtype))
            slot.upload(stream)
        self._start.record(stream)
        if not self.io.execute(stream):
            raise JetsegError("TensorRT inference failed (its messages above say why)",
                              path=self.path, fix="rebuild the engine on this device with "
                                                  "jetseg build")
        self._end.record(stream)
        names = names or [o.name for o in self.outputs]
        for n in names:
            self._slots[n].download(stream)
        self.stream.synchronize()
        self.last_gpu_ms = self._end.elapsed_ms(self._start)
        if self.reuse_outputs:
            return dict((n, self._slots[n].array) for n in names)
        return dict((n, self._slots[n].array.copy()) for n in names)

    def close(self):
        for slot in getattr(self, "_slots", {}).values():
            slot.free()
        self._slots = {}
        for obj in ("_start", "_end", "stream"):
            o = getattr(self, obj, None)
            if o is not None:
                o.close()
                setattr(self, obj, None)
        self.context = self.engine = self._runtime = None   # context before engine
