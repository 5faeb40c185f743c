"""A small ctypes layer over the CUDA runtime (libcudart), CUDA 10.2 to 13.

No compiler, no pycuda, no cuda-python (which needs CUDA >= 11, so no Nano): the same idea
as Polygraphy's ``polygraphy/cuda`` wrapper, with only what jetseg's TensorRT backend needs:

    rt = runtime()                          # finds and starts libcudart once, device 0
    props = rt.device_properties()          # name, compute capability, integrated?

Buffers, streams and events on top of it are in ``cuda_buffers``; finding the library is
``cuda_find``. Every failing call raises CudaError with CUDA's own error name and string,
and a fix for the codes a user can do something about.
"""
import ctypes
import os

from jetseg.errors import JetsegError, log, option
from jetseg.backends import cuda_find
from jetseg.backends.cuda_find import find_cudart, tensorrt_cuda_major

# enums from cuda_runtime_api.h / driver_types.h (stable since CUDA 4)
H2D, D2H, D2D, DEFAULT_KIND = 1, 2, 3, 4
HOST_ALLOC_DEFAULT, HOST_ALLOC_PORTABLE, HOST_ALLOC_MAPPED, HOST_ALLOC_WRITE_COMBINED = 0, 1, 2, 4
DEVICE_MAP_HOST = 0x08
ATTR_INTEGRATED, ATTR_CAN_MAP_HOST_MEMORY = 18, 19
ATTR_CC_MAJOR, ATTR_CC_MINOR = 75, 76
# cudaError_t values (driver_types.h; 708 has been cudaErrorSetOnActiveProcess since CUDA
# 10.1, and 36 is now cudaErrorCallRequiresNewerDriver)
ERR_INIT, ERR_STUB_LIBRARY, ERR_INSUFFICIENT_DRIVER, ERR_NEWER_DRIVER = 3, 34, 35, 36
ERR_NO_DEVICE, ERR_SET_ON_ACTIVE_PROCESS, ERR_UNKNOWN = 100, 708, 999
# a libcudart that answers these may only be the wrong one: the next candidate is tried
WRONG_LIBRARY = (ERR_STUB_LIBRARY, ERR_INSUFFICIENT_DRIVER, ERR_NEWER_DRIVER)

_VOIDP = ctypes.c_void_p
_SIGS = {   # name: (argtypes, restype); every function returns cudaError_t (int) unless said
    "cudaGetErrorString": ([ctypes.c_int], ctypes.c_char_p),
    "cudaGetErrorName": ([ctypes.c_int], ctypes.c_char_p),
    "cudaGetLastError": ([], ctypes.c_int),
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
               "and CUDA toolkit, or run the .onnx model with {cpu}")


def with_option(fix):
    """``fix`` with ``{cpu}`` written as the user wrote options: ``--backend onnxruntime`` on
    the command line, ``backend='onnxruntime'`` from Python."""
    return fix.replace("{cpu}", option("backend", "onnxruntime")) if fix else fix


# cudaErrorInsufficientDriver (35) reads as "update your driver", but with no driver device
# node at all it means there is no NVIDIA driver or GPU: said first, with what to do instead
NO_GPU_CODES = (ERR_INSUFFICIENT_DRIVER, ERR_NO_DEVICE)
NO_GPU = "no NVIDIA driver/GPU found (no /dev/nvidia* or /dev/nvhost* device)"
NO_GPU_FIX = ("not an old driver but a missing one: without an NVIDIA GPU run .onnx models "
              "on the CPU with {cpu}; with one, install its driver (nvidia-smi "
              "shows it), or give a container the GPU (--runtime nvidia on a Jetson, --gpus "
              "all on a desktop)")


def no_gpu_here(codes):
    """True when every CUDA error code in ``codes`` is 35/100 and there is no NVIDIA device
    node: the error is about a missing GPU, not an old driver."""
    codes = set(codes)
    return bool(codes) and codes <= set(NO_GPU_CODES) and not cuda_find.gpu_device_nodes()


HINTS = {
    ERR_INIT: ("CUDA could not initialise: check that the GPU driver is loaded (tegrastats "
               "or nvidia-smi), that this user may use the GPU (the video group on a "
               "Jetson), and in a container that the NVIDIA runtime is on (--runtime nvidia)"),
    ERR_INSUFFICIENT_DRIVER: NO_CUDA_FIX,
    ERR_NO_DEVICE: NO_CUDA_FIX,
    ERR_UNKNOWN: ("CUDA could not reach the GPU; in Docker this is a container without the "
                  "NVIDIA runtime: run it with --runtime nvidia (Jetson) or --gpus all "
                  "(desktop); otherwise reboot, or see tegrastats / nvidia-smi"),
}


class CudaError(JetsegError):
    """A CUDA runtime call failed; ``code`` is the cudaError_t value."""

    def __init__(self, message, code=None, fix=None):
        self.code = code
        super(CudaError, self).__init__(message, fix=with_option(fix))


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
            lead = "no usable CUDA GPU here: " if code in HINTS else ""
            fix = HINTS.get(code) or "see the CUDA error above; `jetseg doctor` checks the " \
                                     "installation"
            if no_gpu_here([code]):
                lead, fix = NO_GPU + ": " + lead, NO_GPU_FIX
            raise CudaError("{}{} failed ({})".format(lead, what, self.error_text(code)),
                            code=code, fix=fix)
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
        if code == ERR_SET_ON_ACTIVE_PROCESS:
            # a context exists already (TensorRT made one): with unified addressing (64-bit)
            # mapping is on anyway. The error is sticky: clear it, or the next check sees it
            self.fn("cudaGetLastError")()
        else:
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


def open_runtime(candidates=None, device=0, load=ctypes.CDLL):
    """The first libcudart of ``candidates`` (default: find_cudart, the CUDA major the
    imported TensorRT was built for first) that loads and starts on this driver. One that
    is a stub, newer than the driver or lacks a function is passed over for the next; bare
    names (the loader's own search) are tried only when no full path loaded."""
    if candidates is None:
        candidates = find_cudart(prefer_major=tensorrt_cuda_major())
    errors, codes, loaded_one = [], set(), False
    for path in candidates:
        if loaded_one and not os.path.isabs(path):
            continue
        try:
            lib = load(path)
        except OSError as e:
            if os.path.isabs(path):
                errors.append("{} ({})".format(path, str(e).split(":")[-1].strip()))
            continue
        loaded_one = loaded_one or os.path.isabs(path)
        rt = CudaRuntime(lib, path, device)
        try:
            return rt.init_device()
        except CudaError as e:
            if e.code is not None and e.code not in WRONG_LIBRARY:
                raise
            errors.append("{} ({})".format(path, rt.error_text(e.code).split(":")[0]
                                           if e.code else e.message))
            codes.add(e.code)
    if not errors:
        raise CudaError("the CUDA runtime library (libcudart) was not found: no "
                        "libcudart.so* in the usual folders",
                        fix=NO_CUDA_FIX + " (or point JETSEG_CUDART at libcudart.so)")
    if no_gpu_here(codes - {ERR_STUB_LIBRARY}):       # a stub library tells nothing of GPUs
        raise CudaError("{}: libcudart says {}".format(NO_GPU, "; ".join(errors[:4])),
                        code=ERR_INSUFFICIENT_DRIVER, fix=NO_GPU_FIX)
    raise CudaError("no libcudart here starts on this GPU driver: " + "; ".join(errors[:4]),
                    code=ERR_INSUFFICIENT_DRIVER if ERR_INSUFFICIENT_DRIVER in codes else None,
                    fix=NO_CUDA_FIX + " (or point JETSEG_CUDART at the libcudart that "
                                      "matches the driver)")


def runtime():
    """The process-wide CudaRuntime, found, loaded and with its device selected on first
    use."""
    global _RUNTIME
    if _RUNTIME is None:
        rt = open_runtime()
        log.debug("CUDA runtime %s from %s", rt.runtime_version(), rt.path)
        _RUNTIME = rt
    return _RUNTIME


def version_text(v):
    """10020 -> "10.2", 12040 -> "12.4" (CUDA's integer version encoding)."""
    return "{}.{}".format(v // 1000, (v % 1000) // 10)
