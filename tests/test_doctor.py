"""``jetseg doctor`` on this machine (a desktop without GPU or TensorRT), and as it would
judge a Jetson (its release file and the system OpenCV folder pointed at test files)."""
import io

import pytest

from tests.helpers.common import run_cli
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
