"""A small ctypes layer over the CUDA runtime (libcudart), CUDA 10.2 to 13.

No compiler, no pycuda, no cuda-python (which needs CUDA >= 11, so no Nano): the same idea
as Polygraphy's ``polygraphy/cuda`` wrapper, with only what jetseg's TensorRT backend needs:

    rt = runtime()                          # loads libcudart once, selects device 0
    props = rt.device_properties()          # name, compute capability, integrated?
    buf = HostBuffer((1, 3, 360, 480), "float32", mapped=True)   # pinned, GPU-visible
    buf.array[...] = frame                  # numpy view of the pinned host memory
    dev = DeviceBuffer(buf.nbytes)
    with Stream() as s:
        dev.copy_from(buf, s); ...; s.synchronize()

Every failing call raises JetsegError with CUDA's own error name and string. Buffers are
allocated once and expose numpy views; nothing here allocates per frame.

Memory on Jetson (CUDA for Tegra app note): CPU and integrated GPU share DRAM, so mapped
pinned memory (``cudaHostAllocMapped`` + ``cudaHostGetDevicePointer``) is read and written
by the GPU in place: zero copies. On Xavier and Orin (compute capability >= 7.2, I/O
coherent) that memory is cached for the CPU too; on the Nano/TX1/TX2 pinned memory is not
CPU-cached, so outputs the CPU reads are better copied from device memory into ordinary
(cached) host memory: ``memory_plan`` makes that choice.
"""
import ctypes
import ctypes.util
import glob
import os
import re

from jetseg.errors import JetsegError, log

# enums from cuda_runtime_api.h / driver_types.h (stable since CUDA 4)
H2D, D2H, D2D, DEFAULT_KIND = 1, 2, 3, 4
HOST_ALLOC_DEFAULT, HOST_ALLOC_PORTABLE, HOST_ALLOC_MAPPED, HOST_ALLOC_WRITE_COMBINED = 0, 1, 2, 4
DEVICE_MAP_HOST = 0x08
ATTR_INTEGRATED, ATTR_CAN_MAP_HOST_MEMORY = 18, 19
ATTR_CC_MAJOR, ATTR_CC_MINOR = 75, 76
ERR_SET_ON_ACTIVE_PROCESS = 36

_VOIDP = ctypes.c_void_p
_SIGS = {   # name: (argtypes, restype); every function returns cudaError_t (int) unless said
    "cudaGetErrorString": ([ctypes.c_int], ctypes.c_char_p),
    "cudaGetErrorName": ([ctypes.c_int], ctypes.c_char_p),
    "cudaRuntimeGetVersion": ([ctypes.POINTER(ctypes.c_int)], ctypes.c_int),
    "cudaDriverGetVersion": ([ctypes.POINTER(ctypes.c_int)], ctypes.c_int),
    "cudaGetDeviceCount": ([ctypes.POINTER(ctypes.c_int)], ctypes.c_int),
    "cudaSetDevice": ([ctypes.c_int], ctypes.c_int),
    "cudaSetDeviceFlags": ([ctypes.c_uint], ctypes.c_int),
    "cudaDeviceGetAttribute": ([ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_int],
                               ctypes.c_int),
    "cudaGetDeviceProperties": ([_VOIDP, ctypes.c_int], ctypes.c_int),
    "cudaGetDeviceProperties_v2": ([_VOIDP, ctypes.c_int], ctypes.c_int),
    "cudaMemGetInfo": ([ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)],
                       ctypes.c_int),
    "cudaMalloc": ([ctypes.POINTER(_VOIDP), ctypes.c_size_t], ctypes.c_int),
    "cudaFree": ([_VOIDP], ctypes.c_int),
    "cudaHostAlloc": ([ctypes.POINTER(_VOIDP), ctypes.c_size_t, ctypes.c_uint], ctypes.c_int),
    "cudaFreeHost": ([_VOIDP], ctypes.c_int),
    "cudaHostGetDevicePointer": ([ctypes.POINTER(_VOIDP), _VOIDP, ctypes.c_uint], ctypes.c_int),
    "cudaMemcpy": ([_VOIDP, _VOIDP, ctypes.c_size_t, ctypes.c_int], ctypes.c_int),
    "cudaMemcpyAsync": ([_VOIDP, _VOIDP, ctypes.c_size_t, ctypes.c_int, _VOIDP], ctypes.c_int),
    "cudaStreamCreate": ([ctypes.POINTER(_VOIDP)], ctypes.c_int),
    "cudaStreamDestroy": ([_VOIDP], ctypes.c_int),
    "cudaStreamSynchronize": ([_VOIDP], ctypes.c_int),
    "cudaEventCreate": ([ctypes.POINTER(_VOIDP)], ctypes.c_int),
    "cudaEventDestroy": ([_VOIDP], ctypes.c_int),
    "cudaEventRecord": ([_VOIDP, _VOIDP], ctypes.c_int),
    "cudaEventSynchronize": ([_VOIDP], ctypes.c_int),
    "cudaEventElapsedTime": ([ctypes.POINTER(ctypes.c_float), _VOIDP, _VOIDP], ctypes.c_int),
}

NO_CUDA_FIX = ("on a Jetson CUDA comes with JetPack (sudo apt-get install nvidia-jetpack, or "
               "run the container with --runtime nvidia); elsewhere install the NVIDIA driver "
               "and CUDA toolkit, or run the .onnx model with --backend onnxruntime")


class CudaError(JetsegError):
    """A CUDA runtime call failed; ``code`` is the cudaError_t value."""

    def __init__(self, message, code=None, fix=None):
        self.code = code
        super(CudaError, self).__init__(message, fix=fix)


# ---- finding libcudart -------------------------------------------------------------------
def search_dirs(environ=None):
    """Folders where JetPack, the CUDA toolkits (10.2..13) and pip's nvidia wheels keep it."""
    env = os.environ if environ is None else environ
    dirs = [d for d in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if env.get(var):
            dirs += [os.path.join(env[var], "lib64"), os.path.join(env[var], "lib")]
    for root in ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True):
        dirs += [os.path.join(root, "lib64"), os.path.join(root, "lib"),
                 os.path.join(root, "targets", "aarch64-linux", "lib"),
                 os.path.join(root, "targets", "sbsa-linux", "lib"),
                 os.path.join(root, "targets", "x86_64-linux", "lib")]
    dirs += ["/usr/lib/aarch64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib64",
             "/usr/lib"]
    try:                    # pip's nvidia-cuda-runtime-cu1x wheels (desktop only)
        import site
        for sp in site.getsitepackages() + [site.getusersitepackages()]:
            dirs += sorted(glob.glob(os.path.join(sp, "nvidia", "cu*", "lib")), reverse=True)
            dirs.append(os.path.join(sp, "nvidia", "cuda_runtime", "lib"))
    except Exception:       # some virtualenvs have an old site module
        pass
    out = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def _version_key(path):
    nums = re.findall(r"\d+", os.path.basename(path).split(".so", 1)[-1])
    return tuple(int(n) for n in nums)


def loaded_cudart(maps="/proc/self/maps"):
    """The libcudart this process already has (TensorRT loads its own): use the same one."""
    try:
        with open(maps) as f:
            for line in f:
                p = line.split()[-1] if line.strip() else ""
                if "/libcudart.so" in p:
                    return p
    except (IOError, OSError):
        pass
    return None


def find_cudart(environ=None, dirs=None):
    """Candidate libcudart paths, best first: $JETSEG_CUDART, the one already loaded,
    then the newest ``libcudart.so*`` in each known folder, then the loader's own search."""
    env = os.environ if environ is None else environ
    out = []
    if env.get("JETSEG_CUDART"):
        out.append(env["JETSEG_CUDART"])
    if environ is None:
        here = loaded_cudart()
        if here:
            out.append(here)
    for d in (search_dirs(env) if dirs is None else dirs):
        found = sorted(glob.glob(os.path.join(d, "libcudart.so*")), key=_version_key,
                       reverse=True)
        out += [f for f in found if os.path.isfile(f)]
    name = ctypes.util.find_library("cudart")
    if name:
        out.append(name)
    out += ["libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0",
            "libcudart.so.10.2"]
    seen, uniq = set(), []
    for p in out:
        key = os.path.realpath(p) if os.path.isabs(p) else p
        if key not in seen:
            seen.add(key)
            uniq.append(p)
    return uniq


def load_cudart(candidates=None):
    """(ctypes.CDLL, path) for the first candidate that loads, or JetsegError."""
    candidates = find_cudart() if candidates is None else candidates
    errors = []
    for path in candidates:
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            if os.path.isabs(path):
                errors.append("{} ({})".format(path, str(e).split(":")[-1].strip()))
    tried = "; ".join(errors[:3]) if errors else "no libcudart.so* in the usual folders"
    raise CudaError("the CUDA runtime library (libcudart) was not found: " + tried,
                    fix=NO_CUDA_FIX + " (or point JETSEG_CUDART at libcudart.so)")


# ---- the runtime -------------------------------------------------------------------------
class CudaRuntime(object):
    """Thin typed access to libcudart; every call is checked. ``lib`` may be any object with
    the cuda* functions as attributes (tests pass a fake to prove the error handling)."""

    def __init__(self, lib=None, path=None, device=0):
        if lib is None:
            lib, path = load_cudart()
        self.lib = lib
        self.path = path
        self.device = device
        self._fns = {}
        self._props = None

    def fn(self, name):
        f = self._fns.get(name)
        if f is None:
            try:
                f = getattr(self.lib, name)
            except AttributeError:
                raise CudaError("{} has no {} (CUDA runtime too old?)".format(
                    self.path or "libcudart", name), fix=NO_CUDA_FIX)
            sig = _SIGS.get(name)
            if sig is not None:
                f.argtypes, f.restype = sig
            self._fns[name] = f
        return f

    def error_text(self, code):
        try:
            name = self.fn("cudaGetErrorName")(code)
            text = self.fn("cudaGetErrorString")(code)
            return "{}: {}".format(name.decode("ascii", "replace") if name else code,
                                   text.decode("ascii", "replace") if text else "")
        except (JetsegError, ctypes.ArgumentError):
            return "CUDA error {}".format(code)

    def check(self, code, what):
        if code:
            fix, lead = None, ""
            if code in (35, 100):       # insufficient driver, no device
                fix, lead = NO_CUDA_FIX, "no usable CUDA GPU here: "
            raise CudaError("{}{} failed ({})".format(lead, what, self.error_text(code)),
                            code=code,
                            fix=fix or "see the CUDA error above; `jetseg doctor` checks the "
                                       "installation")
        return code

    def call(self, name, *args):
        return self.check(self.fn(name)(*args), name)

    def _int_out(self, name, *args):
        v = ctypes.c_int(0)
        self.call(name, ctypes.byref(v), *args)
        return v.value

    # ---- versions and device -----------------------------------------------------------
    def runtime_version(self):
        return self._int_out("cudaRuntimeGetVersion")

    def driver_version(self):
        return self._int_out("cudaDriverGetVersion")

    def device_count(self):
        return self._int_out("cudaGetDeviceCount")

    def init_device(self):
        """Select the device and allow mapped host memory (before any context exists)."""
        if self.device_count() < 1:
            raise CudaError("no CUDA GPU is visible", fix=NO_CUDA_FIX)
        code = self.fn("cudaSetDeviceFlags")(DEVICE_MAP_HOST)
        if code not in (0, ERR_SET_ON_ACTIVE_PROCESS):   # with UVA (64-bit) mapping is on
            self.check(code, "cudaSetDeviceFlags")
        self.call("cudaSetDevice", self.device)
        return self

    def attribute(self, attr):
        return self._int_out("cudaDeviceGetAttribute", attr, self.device)

    def device_properties(self):
        """{"name", "compute_capability": (major, minor), "integrated", "can_map_host_memory",
        "total_memory"}: numbers through cudaDeviceGetAttribute (ABI-stable), the name from
        cudaDeviceProp, whose first field is ``char name[256]`` in every CUDA version."""
        if self._props is None:
            buf = ctypes.create_string_buffer(16384)     # larger than any cudaDeviceProp
            try:
                fname = "cudaGetDeviceProperties_v2"     # CUDA 12+ headers call this one
                self.fn(fname)
            except JetsegError:
                fname = "cudaGetDeviceProperties"
            self.call(fname, ctypes.cast(buf, _VOIDP), self.device)
            free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
            try:
                self.call("cudaMemGetInfo", ctypes.byref(free), ctypes.byref(total))
            except JetsegError:
                pass
            self._props = {
                "name": buf.raw[:256].split(b"\0", 1)[0].decode("utf-8", "replace"),
                "compute_capability": (self.attribute(ATTR_CC_MAJOR),
                                       self.attribute(ATTR_CC_MINOR)),
                "integrated": bool(self.attribute(ATTR_INTEGRATED)),
                "can_map_host_memory": bool(self.attribute(ATTR_CAN_MAP_HOST_MEMORY)),
                "total_memory": total.value or None,
            }
        return dict(self._props)

    # ---- memory ------------------------------------------------------------------------
    def malloc(self, nbytes):
        p = _VOIDP()
        self.call("cudaMalloc", ctypes.byref(p), ctypes.c_size_t(max(1, int(nbytes))))
        return p.value

    def free(self, ptr):
        if ptr:
            self.call("cudaFree", _VOIDP(ptr))

    def host_alloc(self, nbytes, flags=HOST_ALLOC_DEFAULT):
        p = _VOIDP()
        self.call("cudaHostAlloc", ctypes.byref(p), ctypes.c_size_t(max(1, int(nbytes))),
                  flags)
        return p.value

    def free_host(self, ptr):
        if ptr:
            self.call("cudaFreeHost", _VOIDP(ptr))

    def host_device_pointer(self, host_ptr):
        p = _VOIDP()
        self.call("cudaHostGetDevicePointer", ctypes.byref(p), _VOIDP(host_ptr), 0)
        return p.value

    def memcpy(self, dst, src, nbytes, kind, stream=None):
        n = ctypes.c_size_t(int(nbytes))
        if stream is None:
            self.call("cudaMemcpy", _VOIDP(dst), _VOIDP(src), n, kind)
        else:
            self.call("cudaMemcpyAsync", _VOIDP(dst), _VOIDP(src), n, kind, _VOIDP(stream))

    # ---- streams and events ------------------------------------------------------------
    def _handle_out(self, name):
        p = _VOIDP()
        self.call(name, ctypes.byref(p))
        return p.value

    def stream_create(self):
        return self._handle_out("cudaStreamCreate")

    def stream_destroy(self, s):
        self.call("cudaStreamDestroy", _VOIDP(s))

    def stream_synchronize(self, s):
        self.call("cudaStreamSynchronize", _VOIDP(s))

    def event_create(self):
        return self._handle_out("cudaEventCreate")

    def event_destroy(self, e):
        self.call("cudaEventDestroy", _VOIDP(e))

    def event_record(self, e, stream=None):
        self.call("cudaEventRecord", _VOIDP(e), _VOIDP(stream))

    def event_synchronize(self, e):
        self.call("cudaEventSynchronize", _VOIDP(e))

    def event_elapsed_ms(self, start, end):
        ms = ctypes.c_float(0.0)
        self.call("cudaEventElapsedTime", ctypes.byref(ms), _VOIDP(start), _VOIDP(end))
        return float(ms.value)


_RUNTIME = None


def runtime():
    """The process-wide CudaRuntime, loaded and with its device selected on first use."""
    global _RUNTIME
    if _RUNTIME is None:
        rt = CudaRuntime()
        rt.init_device()
        log.debug("CUDA runtime %s from %s", rt.runtime_version(), rt.path)
        _RUNTIME = rt
    return _RUNTIME


def version_text(v):
    """10020 -> "10.2", 12040 -> "12.4" (CUDA's integer version encoding)."""
    return "{}.{}".format(v // 1000, (v % 1000) // 10)


def memory_plan(props, role):
    """How to place one I/O tensor: "mapped" (zero-copy: GPU uses the pinned host memory in
    place), "pinned" (pinned host + device buffer, async copies) or "pageable" (device
    buffer copied back into ordinary cached host memory: outputs on Tegra without I/O
    coherency, where pinned memory is uncached for the CPU)."""
    if not props.get("integrated") or not props.get("can_map_host_memory"):
        return "pinned"
    if role == "output" and tuple(props.get("compute_capability") or (0, 0)) < (7, 2):
        return "pageable"
    return "mapped"


# ---- objects -----------------------------------------------------------------------------
def _nbytes(shape, dtype):
    import numpy as np
    n = 1
    for d in shape:
        n *= int(d)
    return n * np.dtype(dtype).itemsize


class HostBuffer(object):
    """Pinned (page-locked) host memory with a numpy view ``array``; ``mapped=True`` also
    maps it into the GPU's address space (``device_ptr``)."""

    def __init__(self, shape, dtype, mapped=False, rt=None):
        import numpy as np
        self.rt = rt or runtime()
        self.shape, self.dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        self.nbytes = _nbytes(self.shape, self.dtype)
        flags = HOST_ALLOC_MAPPED if mapped else HOST_ALLOC_DEFAULT
        self.ptr = self.rt.host_alloc(self.nbytes, flags)
        self.device_ptr = self.rt.host_device_pointer(self.ptr) if mapped else None
        raw = (ctypes.c_uint8 * max(1, self.nbytes)).from_address(self.ptr)
        self.array = np.frombuffer(raw, np.uint8, self.nbytes).view(self.dtype).reshape(
            self.shape)

    def free(self):
        if self.ptr:
            self.array = None
            self.rt.free_host(self.ptr)
            self.ptr = self.device_ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()


class DeviceBuffer(object):
    """``nbytes`` of GPU memory; copies to and from host arrays (async with a stream)."""

    def __init__(self, nbytes, rt=None):
        self.rt = rt or runtime()
        self.nbytes = int(nbytes)
        self.ptr = self.rt.malloc(self.nbytes)

    def _check(self, arr):
        if arr.nbytes != self.nbytes or not arr.flags["C_CONTIGUOUS"]:
            raise JetsegError("host array of {} bytes (contiguous: {}) for a device buffer of "
                              "{} bytes".format(arr.nbytes, arr.flags["C_CONTIGUOUS"],
                                                self.nbytes),
                              fix="this is a jetseg bug: please report it")

    def copy_from(self, host, stream=None):
        """``host``: numpy array or HostBuffer. Async on ``stream`` (a Stream or handle)."""
        arr = getattr(host, "array", host)
        self._check(arr)
        self.rt.memcpy(self.ptr, arr.ctypes.data, self.nbytes, H2D, _handle(stream))

    def copy_to(self, host, stream=None):
        arr = getattr(host, "array", host)
        self._check(arr)
        self.rt.memcpy(arr.ctypes.data, self.ptr, self.nbytes, D2H, _handle(stream))

    def free(self):
        if self.ptr:
            self.rt.free(self.ptr)
            self.ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()


def _handle(stream):
    return getattr(stream, "handle", stream)


class Stream(object):
    def __init__(self, rt=None):
        self.rt = rt or runtime()
        self.handle = self.rt.stream_create()

    def synchronize(self):
        self.rt.stream_synchronize(self.handle)

    def close(self):
        if self.handle:
            self.rt.stream_destroy(self.handle)
            self.handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Event(object):
    """Timing marks on a stream: ``end.elapsed_ms(start)`` after ``end.synchronize()``."""

    def __init__(self, rt=None):
        self.rt = rt or runtime()
        self.handle = self.rt.event_create()

    def record(self, stream=None):
        self.rt.event_record(self.handle, _handle(stream))

    def synchronize(self):
        self.rt.event_synchronize(self.handle)

    def elapsed_ms(self, start):
        return self.rt.event_elapsed_ms(start.handle, self.handle)

    def close(self):
        if self.handle:
            self.rt.event_destroy(self.handle)
            self.handle = None
