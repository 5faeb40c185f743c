"""CUDA memory, streams and events over the ctypes runtime (jetseg.backends.cuda).

    buf = HostBuffer((1, 3, 360, 480), "float32", mapped=True)   # pinned, GPU-visible
    buf.array[...] = frame                  # numpy view of the pinned host memory
    dev = DeviceBuffer(buf.nbytes)
    with Stream() as s:
        dev.copy_from(buf, s); ...; s.synchronize()

Buffers are allocated once and expose numpy views; nothing here allocates per frame.

Memory on Jetson (CUDA for Tegra app note): CPU and integrated GPU share DRAM, so mapped
pinned memory (``cudaHostAllocMapped`` + ``cudaHostGetDevicePointer``) is read and written
by the GPU in place: zero copies. On Xavier and Orin (compute capability >= 7.2, I/O
coherent) that memory is cached for the CPU too; on the Nano/TX1/TX2 pinned memory is not
CPU-cached, so outputs the CPU reads are better copied from device memory into ordinary
(cached) host memory: ``memory_plan`` makes that choice.
"""
import ctypes

from jetseg.errors import JetsegError
from jetseg.backends import cuda


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
        self.rt = rt or cuda.runtime()
        self.shape, self.dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        self.nbytes = _nbytes(self.shape, self.dtype)
        flags = cuda.HOST_ALLOC_MAPPED if mapped else cuda.HOST_ALLOC_DEFAULT
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
        self.rt = rt or cuda.runtime()
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
        self.rt.memcpy(self.ptr, arr.ctypes.data, self.nbytes, cuda.H2D, _handle(stream))

    def copy_to(self, host, stream=None):
        arr = getattr(host, "array", host)
        self._check(arr)
        self.rt.memcpy(arr.ctypes.data, self.ptr, self.nbytes, cuda.D2H, _handle(stream))

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
        self.rt = rt or cuda.runtime()
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
        self.rt = rt or cuda.runtime()
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
