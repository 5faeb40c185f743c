"""``jetseg doctor`` on this machine (a desktop without GPU or TensorRT), and as it would
judge a Jetson (its release file and the system OpenCV folder pointed at test files)."""
import io

import pytest

from tests.helpers.common import run_cli
from jetseg import JetsegError
from jetseg.cli import doctor
from jetseg.cli import build_parser

R32 = ("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, "
       "DATE: Sat Feb 19 17:05:08 UTC 2022\n")




def _run(**kw):
    out = io.StringIO()
    code = doctor.run_doctor(out=out, **kw)
    return code, out.getvalue()


def _has(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def test_doctor_here_lists_everything_with_fixes_for_what_is_missing():
    code, text = _run()
    for name in ("Python", "numpy", "Jetson", "CUDA", "TensorRT", "OpenCV", "ONNX Runtime",
                 "cameras"):
        assert "] {}".format(name) in text, name
    assert ("] GStreamer" in text) == _has("cv2")     # asked of OpenCV when there is one
    assert "desktop (not a Jetson)" in text
    lines = text.splitlines()
    for i, line in enumerate(lines):            # every failed check is followed by its fix
        if line.startswith("  [--]") or line.startswith("  [!!]"):
            assert "fix:" in lines[i + 1], line
    if not _has("tensorrt"):
        assert "python3-libnvinfer" in text
    essentials_here = _has("cv2") and (_has("onnxruntime") or _has("tensorrt"))
    assert code == (0 if essentials_here else 1)
    assert ("all essentials for this machine are present" in text) == essentials_here


def test_doctor_on_a_jetson_without_tensorrt_fails_and_says_how(tmp_path, monkeypatch):
    rel = tmp_path / "nv_tegra_release"
    rel.write_text(R32)
    monkeypatch.setattr(doctor, "TEGRA_RELEASE", str(rel))
    monkeypatch.setattr(doctor, "DT_MODEL", str(tmp_path / "no-model"))
    code, text = _run()
    assert "L4T R32.7.1 = JetPack 4.6" in text and "jetseg doctor: Jetson" in text
    if _has("tensorrt"):
        pytest.skip("TensorRT is installed here")
    assert code == 1
    missing = [l for l in text.splitlines() if l.startswith("missing for this machine")][0]
    assert "TensorRT" in missing
    assert "argus socket" in text


def test_doctor_sees_pip_opencv_hiding_jetpacks(tmp_path, monkeypatch):
    cv2 = pytest.importorskip("cv2")
    if any(cv2.__file__.startswith(d) for d in doctor.SYSTEM_DISTS):
        pytest.skip("this OpenCV is the system's")
    rel = tmp_path / "nv_tegra_release"
    rel.write_text(R32)
    (tmp_path / "dist-packages" / "cv2").mkdir(parents=True)      # JetPack's python3-opencv
    monkeypatch.setattr(doctor, "TEGRA_RELEASE", str(rel))
    monkeypatch.setattr(doctor, "SYSTEM_DISTS", (str(tmp_path / "dist-packages"),))
    code, text = _run()
    assert "pip's opencv-python" in text and "hides JetPack's OpenCV" in text
    assert "pip3 uninstall opencv-python" in text
    assert code == 1


@pytest.mark.parametrize("text,l4t,jp", [
    (R32, "R32.7.1", "4.6"),
    ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref", "R35.4.1", "5.x"),
    ("# R36 (release), REVISION: 3.0, GCID: 36923193, BOARD: generic", "R36.3.0", "6.x"),
    ("# R32 (release), REVISION: 4.4, GCID: 23942405", "R32.4.4",
     "4.5 or older (jetseg needs JetPack 4.6+)"),
])
def test_jetson_release_parsing(tmp_path, text, l4t, jp):
    p = tmp_path / "rel"
    p.write_text(text)
    assert doctor.jetson_release(str(p)) == (l4t, jp)
    assert doctor.jetson_release(str(tmp_path / "none")) is None


def test_selftest_without_cuda_says_why_and_fails():
    try:
        from jetseg.backends import cuda
        cuda.runtime()
        pytest.skip("a CUDA GPU is visible here: run jetseg doctor --selftest instead")
    except Exception:
        pass
    code, text = _run(selftest=True)
    assert code == 1
    assert "cannot self-test without a CUDA GPU" in text




def test_doctor_subcommand(capsys, keep_logging):
    from jetseg.cli.common import run_guarded
    code = run_guarded(build_parser(), lambda a: a.func(a), ["doctor"])
    assert code in (0, 1) and "jetseg doctor:" in capsys.readouterr().out
    assert run_guarded(build_parser(), lambda a: a.func(a), ["doctor", "--model", "m.onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--selftest" in err


def test_doctor_through_the_real_cli_when_wired():
    import jetseg.cli as cli
    try:
        cli.build_parser().parse_args(["doctor"])
    except SystemExit:
        pytest.skip("jetseg.cli does not register trt_cli yet")
    r = run_cli("doctor")
    assert r.returncode in (0, 1) and "jetseg doctor:" in r.stdout


def test_selftest_code_path_against_emulated_cudart(monkeypatch):
    """The self-test's own logic, run against tests/helpers/cuda_emulator.py host emulation of
    libcudart (this proves the self-test code, not CUDA: run it on a GPU for that)."""
    from jetseg.backends import cuda, selftest
    from tests.helpers.cuda_emulator import emulated_runtime
    rt, lib = emulated_runtime(integrated=True, cc=(5, 3))
    monkeypatch.setattr(cuda, "runtime", lambda: rt)
    out = io.StringIO()
    ok = selftest.run_selftest(out)
    text = out.getvalue()
    assert ok, text
    assert "[ok] cudaHostAlloc + cudaMalloc + cudaMemcpyAsync" in text
    assert "[ok] cudaHostAllocMapped + cudaHostGetDevicePointer" in text
    if not _has("tensorrt"):
        assert "TensorRT not installed: engine self-test skipped" in text
    assert lib.mem == {}


# ---- issue 11 defects --------------------------------------------------------------------
def test_d7_class_maps_compared_by_agreement_overlays_with_tolerance():
    import numpy as np
    from jetseg.backends.selftest import compare_outputs
    rnd = np.random.RandomState(0)
    classes = rnd.randint(0, 5, (1, 100, 100)).astype(np.int64)
    overlay = rnd.randint(0, 256, (1, 100, 100, 3)).astype(np.uint8)
    scores = rnd.rand(1, 5, 100, 100).astype(np.float32)
    roles = {"classes": "classes", "overlay": "overlay", "scores": "scores"}
    ref = {"classes": classes, "overlay": overlay, "scores": scores}
    near = {"classes": classes.astype(np.int32).copy(), "overlay": overlay.copy(),
            "scores": scores + 2e-4}
    near["classes"][0, :2, :5] += 1                    # 10 ties of 10000 went the other way
    near["overlay"][0, :2, :5] = 255 - overlay[0, :2, :5]   # so did their colours,
    near["overlay"][0, 50:] = np.clip(overlay[0, 50:].astype(int) + 1, 0, 255)  # rounding
    got = compare_outputs(near, ref, roles, "fp32")
    assert all(ok for _, ok, _ in got), got
    assert "99.900% of pixels agree" in got[0][2]
    far = dict(near, classes=(classes + 1) % 5)
    bad = dict((n, ok) for n, ok, _ in compare_outputs(far, ref, roles, "fp32"))
    assert bad == {"classes": False, "overlay": True, "scores": True}
    off = dict(near, scores=scores + 0.5)
    assert not dict((n, ok) for n, ok, _ in compare_outputs(off, ref, roles))["scores"]


def _selftest_model(tmp_path, h, w):
    import json
    import onnx
    from onnx import TensorProto, helper
    g = helper.make_graph(
        [helper.make_node("Add", ["image", "image"], ["scores"]),
         helper.make_node("ArgMax", ["scores"], ["classes"], axis=1, keepdims=0)], "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3, h, w]),
         helper.make_tensor_value_info("classes", TensorProto.INT64, [1, h, w])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.metadata_props.add(key="jetseg.outputs",
                         value=json.dumps({"scores": "scores", "classes": "classes"}))
    p = str(tmp_path / "check.onnx")
    onnx.save(m, p)
    return p


def test_d7_model_selftest_without_tf32_agreement_and_both_backends_closed(tmp_path,
                                                                          monkeypatch):
    """Against recording TensorRT fakes (tests/helpers/trt_fakes.py) and real ONNX Runtime:
    the engine is built with TF32 cleared, one class pixel in 2000 flipped by the 'engine'
    passes, and both backends are closed even when one fails."""
    pytest.importorskip("onnxruntime")
    from jetseg.backends import selftest
    from jetseg.backends.onnxruntime import OrtBackend
    from tests.helpers.trt_fakes import ORIN, FakeBuilderTrt, FakeNet, fake_platform

    class TieBreaking(FakeNet):          # the engine resolves one near-tie differently
        def compute(self, addr):
            from tests.helpers.trt_fakes import view
            FakeNet.compute(self, addr)
            c = view(addr["classes"], self.context_shape("classes"), self.cdt)
            c[0, 0, 0] = (c[0, 0, 0] + 1) % 3
            return True
    trt = FakeBuilderTrt("10.3.0.30")
    trt.net = lambda: TieBreaking(h=40, w=50)
    use = fake_platform(monkeypatch)
    use(trt, ORIN)
    model = _selftest_model(tmp_path, 40, 50)
    lines = []
    ok = selftest.model_selftest(lambda good, what: lines.append((good, what)) or good,
                                 model, use.state["rt"])
    assert ok, lines
    assert ("clear_flag", "TF32") in trt.calls
    assert "classes (class map): 99.950% of pixels agree" in lines[0][1]
    assert use.state["lib"].mem == {}                  # the engine's buffers were freed
    closed = []
    monkeypatch.setattr(OrtBackend, "close", lambda self: closed.append("ort"))

    def fails(*args):
        raise RuntimeError("comparison failed")
    monkeypatch.setattr(selftest, "compare_outputs", fails)
    with pytest.raises(RuntimeError):
        selftest.model_selftest(lambda good, what: good, model, use.state["rt"])
    assert closed == ["ort"] and use.state["lib"].mem == {}


@pytest.mark.parametrize("release,tensorrt,target", [
    ("# R32 (release), REVISION: 6.1, GCID: 27863751", "8.0.1", "trt8.2"),
    (R32, "8.2.1", "trt8.2"),
    ("# R35 (release), REVISION: 1.0, GCID: 31346300", "8.4.1", "trt8.2"),
    ("# R35 (release), REVISION: 4.1, GCID: 33958178", "8.5.2", "trt8.5"),
    ("# R36 (release), REVISION: 3.0, GCID: 36923193", "8.6.2", "trt8.6"),
    ("# R36 (release), REVISION: 4.3, GCID: 38968081", "10.3.0", "trt10"),
])
def test_d9_doctor_names_the_tensorrt_and_export_target_of_each_jetpack(
        tmp_path, monkeypatch, release, tensorrt, target):
    if _has("tensorrt"):
        pytest.skip("TensorRT is installed here: doctor names the installed one's target")
    rel = tmp_path / "nv_tegra_release"
    rel.write_text(release)
    monkeypatch.setattr(doctor, "TEGRA_RELEASE", str(rel))
    monkeypatch.setattr(doctor, "DT_MODEL", str(tmp_path / "no-model"))
    code, text = _run()
    assert "(TensorRT {})".format(tensorrt) in text
    line = [l for l in text.splitlines() if "] export target" in l][0]
    assert "--target {} (TensorRT {}, as L4T".format(target, tensorrt) in line
    if tensorrt == "8.4.1":
        assert "no uint8" in line and "trt8.2" in line


@pytest.mark.parametrize("version,target", [
    ("8.2.1.8", "trt8.2"), ("8.4.1.5", "trt8.2"), ("8.5.2.2", "trt8.5"), ("8.6.2.3", "trt8.6"),
    ("10.3.0.30", "trt10"), ("10.16.1.11", "trt10"), ("11.4.0.106", "trt11")])
def test_export_target_for_each_tensorrt(version, target):
    from jetseg.backends.tensorrt.platform import export_target
    assert export_target(version) == target


def test_selftest_cuda_half_catches_copies_that_lose_bytes(monkeypatch):
    """The byte-for-byte checks can fail: a libcudart whose copies move one byte short
    (emulated) is reported with [!!] and a failing self-test."""
    import ctypes
    from jetseg.backends import cuda, selftest
    from tests.helpers.cuda_emulator import emulated_runtime
    rt, lib = emulated_runtime(integrated=True, cc=(8, 7))
    lib._copy = lambda dst, src, n: ctypes.memmove(dst, src, n - 1) and 0
    monkeypatch.setattr(cuda, "runtime", lambda: rt)
    out = io.StringIO()
    assert selftest.run_selftest(out) is False
    text = out.getvalue()
    assert "[!!] cudaHostAlloc + cudaMalloc + cudaMemcpyAsync" in text
    assert "FAILED" in text and lib.mem == {}


# ---- no NVIDIA driver at all: cudaErrorInsufficientDriver must not read as "update it" -----
def _nodes(monkeypatch, tmp_path, present):
    from jetseg.backends import cuda_find
    dev = tmp_path / "dev"
    dev.mkdir(exist_ok=True)
    if present:
        (dev / "nvhost-ctrl").write_text("")
    monkeypatch.setattr(cuda_find, "GPU_DEVICE_GLOBS", (str(dev / "nvidia*"),
                                                        str(dev / "nvhost*")))


@pytest.mark.parametrize("code", [35, 100])
def test_no_driver_device_says_no_gpu_first(monkeypatch, tmp_path, code):
    from jetseg.backends import cuda
    from tests.helpers.cuda_emulator import EmulatedCudart
    lib = EmulatedCudart(fail={"cudaGetDeviceCount": code})

    def fail():
        return cuda.open_runtime(["/cuda-13/libcudart.so.13"], load=lambda p: lib)
    monkeypatch.setattr(cuda, "runtime", fail)
    _nodes(monkeypatch, tmp_path, present=False)
    text = _run()[1]
    line = [l for l in text.splitlines() if "] CUDA" in l][0]
    assert line.split("CUDA", 1)[1].strip().startswith(
        "no NVIDIA driver/GPU found (no /dev/nvidia* or /dev/nvhost* device):"), line
    assert "fix: not an old driver but a missing one" in text
    _nodes(monkeypatch, tmp_path, present=True)      # a driver is there: CUDA's own words
    text = _run()[1]
    assert "no NVIDIA driver/GPU found" not in text and "not an old driver" not in text
    assert ("no libcudart here starts on this GPU driver" if code == 35 else
            "no usable CUDA GPU here: cudaGetDeviceCount failed") in text


def test_doctor_here_without_a_gpu_says_so():
    """This machine, for real: a CUDA 13 libcudart, no NVIDIA device node."""
    from jetseg.backends import cuda, cuda_find
    if cuda_find.gpu_device_nodes():
        pytest.skip("this machine has an NVIDIA driver")
    try:
        cuda.load_cudart()
    except JetsegError:
        pytest.skip("no libcudart here")
    r = run_cli("doctor")
    line = [l for l in r.stdout.splitlines() if "] CUDA" in l][0]
    assert line.startswith("  [--] CUDA            no NVIDIA driver/GPU found"), line
    assert r.returncode in (0, 1)
