"""TensorRT backend: runs an engine from CUDA buffers, TensorRT 8.2 to 11.

Same shape as the ONNX Runtime backend: ``inputs``, ``outputs``, ``metadata``, ``run``.
The runner only runs: making the engine (platform facts, cache, build, file, deserialise)
is the loaders' work (loader.py); ``open_tensorrt(path)`` puts the two together.

Per frame: each input is copied once into its pinned (or GPU-mapped) buffer, the copies and
the inference are queued on one CUDA stream, outputs come back into buffers allocated when
the engine was opened, and events time the GPU part (``last_gpu_ms``). Outputs are handed
out as copies by default because a threaded pipeline keeps results for several frames;
``reuse_outputs=True`` hands out the buffers themselves (valid until the next ``run``).
"""
from jetseg.errors import JetsegError, log
from jetseg.core.modelinfo import TensorDesc
from jetseg.backends import Backend
from jetseg.backends.tensorrt import loader as loaders, platform as plat
from jetseg.backends.cuda_buffers import Event, Stream
from jetseg.backends.tensorrt.tensors import Slot, make_io, numpy_dtype

MEMORY = ("auto", "mapped", "pinned")


def open_tensorrt(path, precision=None, workspace_mb=None, dla_core=None, timing_cache=None,
                  rebuild=False, memory="auto", reuse_outputs=False):
    """A TrtBackend for an engine file, or for an .onnx through the engine cache (built on
    the first start). TensorRT is imported first: without it the error says how to get it."""
    from jetseg.backends import cuda
    trt = plat.import_tensorrt()
    rt = cuda.runtime()
    facts = plat.platform_facts(trt, rt)
    load = loaders.engine_loader(path, facts=facts, precision=precision,
                                 workspace_mb=workspace_mb, dla_core=dla_core,
                                 timing_cache=timing_cache, rebuild=rebuild)
    return TrtBackend(load, trt=trt, rt=rt, props=facts, memory=memory,
                      reuse_outputs=reuse_outputs)


class TrtBackend(Backend):
    """A TensorRT engine behind the Backend interface.

    engine        a loader (loader.py; called once), a Plan or plan bytes (deserialised
                  here), a LoadedEngine, or an already deserialised ICudaEngine
    trt, rt, props  the tensorrt module, the CUDA runtime and its device properties
                  (default: imported / jetseg.backends.cuda.runtime())
    metadata      the model's metadata (default: from the engine's header)
    memory        "auto" (by GPU, see cuda_buffers.memory_plan), "mapped" or "pinned"
    reuse_outputs hand out the output buffers themselves (valid until the next run)
    context       an execution context to use instead of a new one
    """
    name = "tensorrt"
    what = "engine"

    def __init__(self, engine, trt=None, rt=None, props=None, metadata=None, memory="auto",
                 reuse_outputs=False, context=None):
        super(TrtBackend, self).__init__()
        from jetseg.backends import cuda
        if memory not in MEMORY:
            raise JetsegError("unknown memory placement {!r}".format(memory),
                              fix="use auto, mapped (zero-copy) or pinned (copies)")
        trt = trt or plat.import_tensorrt()
        loaded = engine() if callable(engine) else engine       # a loader: load now
        if isinstance(loaded, (bytes, bytearray, memoryview, loaders.Plan)):
            loaded = loaders.DeserializedEngine(loaded, trt)()
        elif not isinstance(loaded, loaders.LoadedEngine):      # a deserialised engine
            loaded = loaders.LoadedEngine(loaded)
        self.trt, self.engine, self._runtime = trt, loaded.engine, loaded.runtime
        self.header, self.path = loaded.header, loaded.path
        self.engine_path = loaded.path
        self.metadata = dict(loaded.metadata if metadata is None else metadata)
        self.rt = rt or cuda.runtime()
        self.props = props or self.rt.device_properties()
        self.context = context or self.engine.create_execution_context()
        if self.context is None:
            raise JetsegError("TensorRT could not create an execution context (out of GPU "
                              "memory?)", path=self.path,
                              fix="close other GPU programs, or build with a smaller "
                                  "--workspace")
        self.io = make_io(trt, self.engine, self.context)
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
        self.stream = Stream(rt=self.rt)
        self._start, self._end = Event(rt=self.rt), Event(rt=self.rt)
        self.last_gpu_ms = None
        if all(d >= 0 for _, _, shape, _ in self._tensors for d in shape):
            self._allocate(dict((n, s) for n, i, s, _ in self._tensors if i))
        log.debug("TensorRT %s via %s; memory %s", getattr(trt, "__version__", "?"),
                  self.io.kind, dict((n, s.mode) for n, s in self._slots.items()))

    def _mode(self, role):
        from jetseg.backends.cuda_buffers import memory_plan
        if self.memory == "auto":
            return memory_plan(self.props, role)
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
            slot = Slot(self.rt, shape, dtype, self._mode("input" if is_input else "output"))
            self._slots[name] = slot
            self.io.set_address(name, slot.device_ptr)
        self._shapes = dict(input_shapes)

    def _run(self, feeds, names):
        import numpy as np
        shapes = dict((t.name, tuple(feeds[t.name].shape)) for t in self.inputs)
        if shapes != self._shapes:
            self._allocate(shapes)
        stream = self.stream.handle
        for t in self.inputs:
            slot = self._slots[t.name]
            np.copyto(slot.array, feeds[t.name])
            slot.upload(stream)
        self._start.record(stream)
        if not self.io.execute(stream):
            raise JetsegError("TensorRT inference failed (its messages above say why)",
                              path=self.path, fix="rebuild the engine on this device with "
                                                  "jetseg build")
        self._end.record(stream)
        for n in names:
            self._slots[n].download(stream)
        self.stream.synchronize()
        self.last_gpu_ms = self._end.elapsed_ms(self._start)
        if self.reuse_outputs:
            return dict((n, self._slots[n].array) for n in names)
        return dict((n, self._slots[n].array.copy()) for n in names)

    def close(self):
        """Free the buffers, stream and events, and drop every reference to TensorRT
        objects (context before engine before runtime), so the GPU memory goes now."""
        for slot in getattr(self, "_slots", {}).values():
            slot.free()
        self._slots = {}
        for obj in ("_start", "_end", "stream"):
            o = getattr(self, obj, None)
            if o is not None:
                o.close()
                setattr(self, obj, None)
        self.io = None
        self.context = None
        self.engine = None
        self._runtime = None
