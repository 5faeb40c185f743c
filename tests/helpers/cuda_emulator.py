"""A host-memory emulation of libcudart (real C function pointers through ctypes): it proves
our ctypes marshalling, never CUDA itself."""
import ctypes

import numpy as np

from jetseg.backends import cuda


class EmulatedCudart(object):
    """A stand-in for libcudart made of real C function pointers (ctypes CFUNCTYPE), so the
    calls go through the same argtypes/restype conversion as the real library. Device and
    host memory are both plain host buffers; the calls made are recorded in ``calls``."""

    def __init__(self, integrated=False, cc=(8, 7), can_map=True, name=b"Emulated GPU",
                 fail=None, devices=1):
        self.calls, self.mem, self.fail, self._keep = [], {}, dict(fail or {}), []
        self.sticky = 0
        self.attrs = {cuda.ATTR_INTEGRATED: int(integrated), cuda.ATTR_CAN_MAP_HOST_MEMORY:
                      int(can_map), cuda.ATTR_CC_MAJOR: cc[0], cuda.ATTR_CC_MINOR: cc[1]}
        self.name, self.devices = name, devices
        self._strings = {}
        impls = {
            "cudaGetErrorString": lambda code: self._string("error string {}".format(code)),
            "cudaGetErrorName": lambda code: self._string("cudaErrorCode{}".format(code)),
            "cudaGetLastError": self._last_error,
            "cudaRuntimeGetVersion": lambda p: self._set(p, 10020),
            "cudaDriverGetVersion": lambda p: self._set(p, 10020),
            "cudaGetDeviceCount": lambda p: self._set(p, self.devices),
            "cudaSetDevice": lambda d: 0,
            "cudaSetDeviceFlags": lambda f: 0,
            "cudaDeviceGetAttribute": lambda p, a, d: self._set(p, self.attrs[a]),
            "cudaGetDeviceProperties_v2": self._props,
            "cudaGetDeviceProperties": self._props,
            "cudaMemGetInfo": lambda f, t: self._set2(f, t, 1 << 30, 4 << 30),
            "cudaMalloc": lambda pp, n: self._alloc(pp, n, "device"),
            "cudaFree": lambda p: self._free(p, "device"),
            "cudaHostAlloc": lambda pp, n, flags: self._alloc(pp, n, "host", flags),
            "cudaFreeHost": lambda p: self._free(p, "host"),
            "cudaHostGetDevicePointer": self._devptr,
            "cudaMemcpy": lambda d, s, n, k: self._copy(d, s, n),
            "cudaMemcpyAsync": lambda d, s, n, k, st: self._copy(d, s, n),
            "cudaStreamCreate": lambda pp: self._set(pp, 0x5000 + len(self.calls)),
            "cudaStreamDestroy": lambda s: 0,
            "cudaStreamSynchronize": lambda s: 0,
            "cudaEventCreate": lambda pp: self._set(pp, 0x7000 + len(self.calls)),
            "cudaEventDestroy": lambda e: 0,
            "cudaEventRecord": lambda e, s: 0,
            "cudaEventSynchronize": lambda e: 0,
            "cudaEventElapsedTime": lambda p, a, b: self._set(p, 0.25),
        }
        for name, impl in impls.items():
            argtypes, restype = cuda._SIGS[name]
            if restype is ctypes.c_char_p:     # callbacks cannot return char*; an address can
                restype = ctypes.c_void_p
            proto = ctypes.CFUNCTYPE(restype, *argtypes)
            f = proto(self._recorder(name, impl))
            self._keep.append(f)
            setattr(self, name, f)

    def _recorder(self, name, impl):
        def call(*args):
            self.calls.append(name)
            if name in self.fail:
                self.sticky = self.fail[name]      # the runtime remembers the last error
                return self.fail[name]
            return impl(*args)
        return call

    def _last_error(self):
        """cudaGetLastError: the last error, which it resets to cudaSuccess."""
        code, self.sticky = self.sticky, 0
        return code

    def _string(self, text):
        if text not in self._strings:
            self._strings[text] = ctypes.create_string_buffer(text.encode("ascii"))
        return ctypes.addressof(self._strings[text])

    @staticmethod
    def _set(p, value):
        p[0] = value
        return 0

    @staticmethod
    def _set2(a, b, va, vb):
        a[0], b[0] = va, vb
        return 0

    def _props(self, ptr, dev):
        ctypes.memmove(ptr, self.name + b"\0", len(self.name) + 1)
        return 0

    def _alloc(self, pp, n, kind, flags=0):
        buf = ctypes.create_string_buffer(max(1, n))
        addr = ctypes.addressof(buf)
        self.mem[addr] = (kind, buf, flags)
        pp[0] = addr
        return 0

    def _free(self, p, kind):
        if p not in self.mem or self.mem[p][0] != kind:
            return 1                                   # cudaErrorInvalidValue
        del self.mem[p]
        return 0

    def _devptr(self, pp, host, flags):
        entry = self.mem.get(host)
        if entry is None or not entry[2] & cuda.HOST_ALLOC_MAPPED:
            return 1
        pp[0] = host                                   # unified addressing: same address
        return 0

    @staticmethod
    def _copy(dst, src, n):
        ctypes.memmove(dst, src, n)
        return 0


def emulated_runtime(**kw):
    lib = EmulatedCudart(**kw)
    return cuda.CudaRuntime(lib=lib, path="emulated-libcudart").init_device(), lib
