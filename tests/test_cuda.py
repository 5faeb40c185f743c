"""jetseg.cuda without a GPU: finding libcudart, the "no CUDA here" errors, and the ctypes
marshalling of every call against a *host-memory emulation* of libcudart.

What these tests do NOT show: that real CUDA behaves as emulated. They show that our
ctypes signatures, pointer handling, error checking and buffer objects do what we mean;
real device memory, mapped memory and streams are exercised by ``jetseg doctor --selftest``
on a CUDA machine only.
"""
import ctypes

import numpy as np
import pytest

from jetseg.backends import cuda, cuda_buffers, cuda_find
from jetseg.errors import JetsegError


from tests.helpers.cuda_emulator import EmulatedCudart, emulated_runtime  # noqa: E402,F401


# ---- library discovery -------------------------------------------------------------------
def test_find_cudart_prefers_explicit_path_then_newest_in_each_folder(tmp_path):
    old, new = tmp_path / "cuda-10.2" / "lib64", tmp_path / "cuda-12" / "lib64"
    for d, names in ((old, ["libcudart.so.10.2", "libcudart.so.10.2.300"]),
                     (new, ["libcudart.so.12", "libcudart.so.12.4.127"])):
        d.mkdir(parents=True)
        for n in names:
            (d / n).write_bytes(b"")
    got = cuda_find.find_cudart(environ={"JETSEG_CUDART": "/opt/x/libcudart.so"},
                           dirs=[str(old), str(new)])
    assert got[0] == "/opt/x/libcudart.so"
    assert got[1:3] == [str(old / "libcudart.so.10.2.300"), str(old / "libcudart.so.10.2")]
    assert got[3] == str(new / "libcudart.so.12.4.127")
    assert "libcudart.so.10.2" in got and "libcudart.so.13" in got   # loader's own search


def test_search_dirs_cover_jetpack_toolkits_and_env(tmp_path):
    dirs = cuda_find.search_dirs({"LD_LIBRARY_PATH": "/a:/b", "CUDA_HOME": "/opt/cuda"})
    assert dirs[:2] == ["/a", "/b"]
    assert "/opt/cuda/lib64" in dirs and "/usr/local/cuda/lib64" in dirs
    assert "/usr/local/cuda/targets/aarch64-linux/lib" in dirs    # JetPack's layout


def test_no_cudart_is_a_clear_error(tmp_path):
    bogus = tmp_path / "libcudart.so.10.2"
    bogus.write_bytes(b"not an ELF file")
    with pytest.raises(JetsegError) as e:
        cuda.load_cudart([str(bogus), "libcudart-does-not-exist.so"])
    msg = str(e.value)
    assert "CUDA runtime library (libcudart) was not found" in msg
    assert str(bogus) in msg and "JetPack" in msg and "backend='onnxruntime'" in msg
    from jetseg.errors import command_line_names
    with command_line_names(), pytest.raises(JetsegError) as e:          # jetseg's commands: the flag
        cuda.load_cudart([str(bogus)])
    assert "--backend onnxruntime" in str(e.value) and "backend='" not in str(e.value)


def test_real_libcudart_here_loads_and_reports_no_gpu():
    """This machine has a CUDA 13 libcudart but no GPU/driver: the real library must load
    through our signatures and the failure must read as CUDA's own words."""
    try:
        lib, path = cuda.load_cudart()
    except JetsegError:
        pytest.skip("no libcudart on this machine")
    rt = cuda.CudaRuntime(lib, path)
    assert rt.runtime_version() >= 10000
    try:
        rt.init_device()
    except cuda.CudaError as e:
        assert e.code is not None and "cuda" in str(e).lower()
        assert "no usable CUDA GPU here" in str(e) or "failed" in str(e)
    else:
        pytest.skip("a CUDA GPU is visible here: see jetseg doctor --selftest")


# ---- marshalling and errors, against the emulation ---------------------------------------
def test_errors_carry_cuda_name_and_string():
    rt, lib = emulated_runtime(fail={"cudaMalloc": 2})
    with pytest.raises(cuda.CudaError) as e:
        rt.malloc(100)
    assert e.value.code == 2
    assert "cudaMalloc failed (cudaErrorCode2: error string 2)" in str(e.value)


def test_no_device_says_so_with_the_fix():
    with pytest.raises(cuda.CudaError, match="no CUDA GPU is visible.*JetPack"):
        emulated_runtime(devices=0)
    with pytest.raises(cuda.CudaError, match="no usable CUDA GPU here.*cudaGetDeviceCount"):
        emulated_runtime(fail={"cudaGetDeviceCount": 100})


def test_device_properties_from_attributes_and_name():
    rt, _ = emulated_runtime(integrated=True, cc=(5, 3), name=b"NVIDIA Tegra X1")
    p = rt.device_properties()
    assert p["name"] == "NVIDIA Tegra X1" and p["compute_capability"] == (5, 3)
    assert p["integrated"] is True and p["can_map_host_memory"] is True
    assert cuda.version_text(rt.runtime_version()) == "10.2"


def test_pinned_device_and_mapped_buffers_round_trip():
    rt, lib = emulated_runtime()
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    with cuda_buffers.HostBuffer(a.shape, a.dtype, rt=rt) as src, \
            cuda_buffers.HostBuffer(a.shape, a.dtype, rt=rt) as dst, \
            cuda_buffers.DeviceBuffer(a.nbytes, rt=rt) as dev, cuda_buffers.Stream(rt=rt) as s:
        src.array[...] = a
        dev.copy_from(src, s)
        dev.copy_to(dst, s)
        s.synchronize()
        np.testing.assert_array_equal(dst.array, a)
        assert dst.device_ptr is None
    with cuda_buffers.HostBuffer((4,), "uint8", mapped=True, rt=rt) as m:
        assert m.device_ptr == m.ptr                  # emulated unified address
    assert "cudaMemcpyAsync" in lib.calls and "cudaHostGetDevicePointer" in lib.calls
    assert lib.mem == {}                              # everything allocated was freed


def test_events_time_a_stream():
    rt, _ = emulated_runtime()
    a, b = cuda_buffers.Event(rt=rt), cuda_buffers.Event(rt=rt)
    a.record()
    b.record()
    b.synchronize()
    assert b.elapsed_ms(a) == 0.25
    a.close()
    b.close()


def test_device_buffer_refuses_a_mismatched_host_array():
    rt, _ = emulated_runtime()
    with cuda_buffers.DeviceBuffer(16, rt=rt) as dev:
        with pytest.raises(JetsegError, match="host array of 8 bytes"):
            dev.copy_from(np.zeros(2, np.float32))


@pytest.mark.parametrize("props,inp,out", [
    ({"integrated": False, "can_map_host_memory": True, "compute_capability": (8, 6)},
     "pinned", "pinned"),                                    # desktop GPU: copies
    ({"integrated": True, "can_map_host_memory": True, "compute_capability": (8, 7)},
     "mapped", "mapped"),                                    # Orin: zero-copy both ways
    ({"integrated": True, "can_map_host_memory": True, "compute_capability": (7, 2)},
     "mapped", "mapped"),                                    # Xavier: I/O coherent
    ({"integrated": True, "can_map_host_memory": True, "compute_capability": (5, 3)},
     "mapped", "pageable"),                                  # Nano: CPU reads cached memory
])
def test_memory_plan(props, inp, out):
    assert cuda_buffers.memory_plan(props, "input") == inp
    assert cuda_buffers.memory_plan(props, "output") == out


def test_loaded_cudart_reads_the_process_map(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 0 00:00 1 /usr/lib/libc.so.6\n"
                    "7f02-7f03 r-xp 0 00:00 2 /usr/local/cuda-10.2/lib64/libcudart.so.10.2.300\n")
    assert cuda_find.loaded_cudart(str(maps)).endswith("libcudart.so.10.2.300")
    assert cuda_find.loaded_cudart(str(tmp_path / "none")) is None


# ---- issue 11 defects --------------------------------------------------------------------
def test_d2_existing_context_708_is_tolerated_and_its_sticky_error_cleared():
    """cudaSetDeviceFlags answers cudaErrorSetOnActiveProcess (708 since CUDA 10.1) when
    TensorRT already made a context: start anyway, and clear the sticky error."""
    rt, lib = emulated_runtime(fail={"cudaSetDeviceFlags": cuda.ERR_SET_ON_ACTIVE_PROCESS})
    flags = lib.calls.index("cudaSetDeviceFlags")
    assert lib.calls[flags + 1] == "cudaGetLastError" and lib.sticky == 0
    assert "cudaSetDevice" in lib.calls[flags + 1:]
    with cuda_buffers.DeviceBuffer(8, rt=rt):         # and the runtime works afterwards
        pass


def test_d2_error_36_is_not_mistaken_for_an_existing_context():
    """36 is cudaErrorCallRequiresNewerDriver now: a real failure, reported."""
    with pytest.raises(cuda.CudaError) as e:
        emulated_runtime(fail={"cudaSetDeviceFlags": 36})
    assert e.value.code == 36 and "cudaSetDeviceFlags failed" in str(e.value)


def test_d8_every_libcudart_is_tried_until_one_starts():
    too_new = EmulatedCudart(fail={"cudaGetDeviceCount": cuda.ERR_INSUFFICIENT_DRIVER})
    stub = EmulatedCudart(fail={"cudaGetDeviceCount": cuda.ERR_STUB_LIBRARY})
    good = EmulatedCudart()
    libs = {"/cuda-13/libcudart.so.13": too_new, "/stub/libcudart.so": stub,
            "/cuda-12/libcudart.so.12": good}

    def load(path):
        if path not in libs:
            raise OSError("{}: cannot open shared object file".format(path))
        return libs[path]
    order = ["/cuda-13/libcudart.so.13", "/missing/libcudart.so.11.0", "/stub/libcudart.so",
             "/cuda-12/libcudart.so.12"]
    rt = cuda.open_runtime(order, load=load)
    assert rt.path == "/cuda-12/libcudart.so.12" and "cudaSetDevice" in good.calls
    with pytest.raises(cuda.CudaError) as e:
        cuda.open_runtime(order[:3], load=load)
    msg = str(e.value)
    assert e.value.code == cuda.ERR_INSUFFICIENT_DRIVER
    assert "/cuda-13/libcudart.so.13 (cudaErrorCode35)" in msg and "/stub/libcudart.so" in msg
    nodev = EmulatedCudart(fail={"cudaGetDeviceCount": cuda.ERR_NO_DEVICE})
    with pytest.raises(cuda.CudaError, match="no usable CUDA GPU"):     # not a library issue:
        cuda.open_runtime(["/a/libcudart.so", "/cuda-12/libcudart.so.12"],   # stop at once
                          load=lambda p: nodev if p.startswith("/a/") else good)


def test_d8_cuda_major_tensorrt_was_built_for_comes_first(tmp_path):
    from types import SimpleNamespace
    site = tmp_path / "site-packages"
    (site / "tensorrt").mkdir(parents=True)
    (site / "tensorrt" / "__init__.py").write_text("")
    (site / "tensorrt_cu12_libs-10.3.0.dist-info").mkdir()
    trt = SimpleNamespace(__file__=str(site / "tensorrt" / "__init__.py"))
    assert cuda_find.tensorrt_cuda_major({"tensorrt": trt}) == 12
    assert cuda_find.tensorrt_cuda_major({}) is None
    d13, d12 = tmp_path / "cuda-13" / "lib64", tmp_path / "cuda-12" / "lib64"
    for d, n in ((d13, "libcudart.so.13.0.48"), (d12, "libcudart.so.12.4.127")):
        d.mkdir(parents=True)
        (d / n).write_bytes(b"")
    got = cuda_find.find_cudart(environ={}, dirs=[str(d13), str(d12)], prefer_major=12)
    assert got[:2] == [str(d12 / "libcudart.so.12.4.127"), str(d13 / "libcudart.so.13.0.48")]
    assert got.index("libcudart.so.12") < got.index("libcudart.so.13")
    got = cuda_find.find_cudart(environ={}, dirs=[str(d13), str(d12)])
    assert got[0] == str(d13 / "libcudart.so.13.0.48")           # no preference: as found


@pytest.mark.parametrize("code,words", [
    (999, "--runtime nvidia"),          # a container without the NVIDIA runtime
    (3, "video group"),                 # cudaErrorInitializationError
])
def test_d9_cuda_errors_999_and_3_say_what_to_do(code, words):
    with pytest.raises(cuda.CudaError) as e:
        emulated_runtime(fail={"cudaGetDeviceCount": code})
    assert e.value.code == code and words in str(e.value)
