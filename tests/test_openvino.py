"""The OpenVINO backend against real OpenVINO (skipped where it is not installed): the same
Backend interface and checks as ONNX Runtime, metadata from the ONNX file, one-line errors,
outputs fetched by name, and ``auto``'s choice (graph parity with the numpy reference runs
on both backends in tests/test_graph_parity.py)."""
import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from jetseg import JetsegError, Segmenter
from jetseg.backends import auto_backend, open_backend
from jetseg_export.compose import compose
from tests.helpers.common import COLORS5, NAMES5, ROOT, rng_frame, run_cli
from tests.helpers.tinymodels import TinyNet

pytest.importorskip("openvino")
ort = pytest.importorskip("onnxruntime")
CAMVID_INT8 = ROOT / "engines" / "camvid.int8.onnx"


@pytest.fixture
def full(tmp_path):
    """A composed model: uint8 NHWC image in; uint8 classes, uint8 overlay and float scores
    and confidence out, jetseg metadata in the file."""
    path = str(tmp_path / "full.onnx")
    onnx.save(compose(TinyNet(width=64, height=48, seed=3).onnx(), NAMES5, COLORS5,
                      scores=True, confidence=True, extra={"arch": "tiny"}), path)
    return path


def _ort(path):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def test_tensors_metadata_and_dtypes_as_onnxruntime_sees_them(full):
    b = open_backend(full, "openvino", threads=1)
    o = open_backend(full, "onnxruntime", providers="cpu")
    assert b.name == "openvino" and b.path == full
    for mine, theirs in ((b.inputs, o.inputs), (b.outputs, o.outputs)):
        assert [(t.name, t.shape, t.dtype) for t in mine] == \
               [(t.name, t.shape, t.dtype) for t in theirs]
    props = dict((p.key, p.value) for p in onnx.load(full).metadata_props)
    assert b.metadata == props and "jetseg.classes" in props       # read from the file
    assert b.providers == ["CPU (LATENCY, f32, 1 thread)"] and b.threads == 1
    frame = rng_frame(64, 48, seed=1)[None]
    got, want = b.run({"image": frame}), o.run({"image": frame})
    assert set(got) == set(want) == set(t.name for t in b.outputs)
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape
        assert isinstance(got[name], np.ndarray)
    assert got["classes"].dtype == np.uint8 and got["overlay"].dtype == np.uint8
    assert np.array_equal(got["classes"], want["classes"])
    assert np.abs(got["overlay"].astype(int) - want["overlay"]).max() <= 1
    floats = [n for n in want if want[n].dtype == np.float32]
    assert sorted(floats) == ["confidence", "output_0"]       # the scores keep the net's name
    for name in floats:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4)


def test_only_the_outputs_asked_for_are_computed_and_results_are_kept(full):
    b = open_backend(full, "openvino")
    a, c = rng_frame(64, 48, seed=1)[None], rng_frame(64, 48, seed=2)[None]
    first = b.run({"image": a}, ["classes"])
    assert list(first) == ["classes"]
    compiled = b._requests[("classes",)][0]
    assert [p.get_any_name() for p in compiled.outputs] == ["classes"]     # pruned graph
    kept = first["classes"].copy()
    both = b.run({"image": c}, ["overlay", "classes"])
    assert list(both) == ["overlay", "classes"]
    assert np.array_equal(first["classes"], kept)          # not the request's reused buffer
    assert np.array_equal(both["classes"], b.run({"image": c})["classes"])
    with pytest.raises(JetsegError, match="the model has no output 'nope'.*classes"):
        b.run({"image": a}, ["nope"])


def test_feeds_are_checked_before_openvino_runs(tiny):
    net, path = tiny
    b = open_backend(path, "openvino")
    x = np.zeros((1, 3, 24, 32), np.float32)
    np.testing.assert_allclose(b.run({"input_0": x})["output_0"][0], net.logits(x[0]),
                               atol=1e-4)
    for feeds, why in (({}, "no value for model input 'input_0'"),
                       ({"input_0": x.astype(np.float64)}, "is float64; the model takes "
                                                            "float32"),
                       ({"input_0": x[:, :, :20]}, r"has shape \(1, 3, 20, 32\)")):
        with pytest.raises(JetsegError, match=why):
            b.run(feeds)


def test_errors_are_one_line_with_openvinos_own_words(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07" + b"\x00" * 40)          # a valid varint, then nothing ONNX
    with pytest.raises(JetsegError) as e:
        open_backend(str(bad), "openvino")
    assert str(e.value).startswith(str(bad)) and "\n" not in str(e.value)
    g = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    p = str(tmp_path / "reshape.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), p)
    # two threads: OpenVINO 2026.4 on one thread hands back an empty array for this graph
    # instead of raising (its own behaviour, seen here; a message is what is tested)
    b = open_backend(p, "openvino", threads=2)
    with pytest.raises(JetsegError) as e:
        b.run({"x": np.zeros((2, 3), np.float32), "shape": np.array([4, 4], np.int64)})
    msg = str(e.value)
    assert msg.startswith(p) and "OpenVINO failed: " in msg and "\n" not in msg
    assert ".cpp:" not in msg and "Exception from" not in msg
    with pytest.raises(JetsegError, match="precision 'int4' is not known.*fp32"):
        open_backend(p, "openvino", precision="int4")


def test_missing_openvino_says_how_to_get_it(tiny, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_ov(name, *a, **kw):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("No module named 'openvino'")
        return real(name, *a, **kw)
    monkeypatch.setattr(builtins, "__import__", no_ov)
    with pytest.raises(JetsegError, match=r"OpenVINO is not installed.*jetseg\[openvino\]"):
        open_backend(tiny[1], "openvino")


def test_threads_and_precision_reach_openvino(tiny):
    b = open_backend(tiny[1], "openvino", threads=1, precision="auto")
    compiled = list(b._requests.values())[0][0]
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert "LATENCY" in str(compiled.get_property("PERFORMANCE_HINT"))
    assert "INFERENCE_PRECISION_HINT" not in b.config          # the CPU's own default
    d = open_backend(tiny[1], "openvino")
    assert d.config["INFERENCE_PRECISION_HINT"] == "f32"
    from jetseg.backends import cpu_cores, default_threads
    assert d.threads == default_threads() == cpu_cores()
    compiled = list(d._requests.values())[0][0]
    assert compiled.get_property("INFERENCE_NUM_THREADS") == d.threads


@pytest.mark.skipif(not CAMVID_INT8.exists(), reason="engines/camvid.int8.onnx not here")
def test_int8_qdq_model_runs_and_agrees_with_onnxruntime():
    from jetseg.backends.onnx_proto import has_qdq
    assert has_qdq(str(CAMVID_INT8))
    b = open_backend(str(CAMVID_INT8), "openvino")
    frame = rng_frame(320, 240, seed=0)[None]
    got = b.run({"image": frame}, ["classes"])["classes"]
    want = _ort(str(CAMVID_INT8)).run(["classes"], {"image": frame})[0]
    assert got.dtype == np.uint8 and got.shape == want.shape
    # the two engines round INT8 differently: most, not all, pixels agree
    assert (got == want).mean() > 0.9


def test_auto_picks_openvino_on_an_x86_cpu_and_says_why(tiny, monkeypatch):
    import platform
    name, why = auto_backend(tiny[1])
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert name == "openvino" and "serves this x86 CPU" in why
        assert open_backend(tiny[1]).name == "openvino"
    assert open_backend(tiny[1], providers="cpu").name == "onnxruntime"
    assert auto_backend(tiny[1], providers="cpu")[0] == "onnxruntime"
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert auto_backend(tiny[1]) == ("onnxruntime",
                                     "OpenVINO is installed but this CPU is aarch64, not x86")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    import jetseg.backends.openvino as ovmod
    monkeypatch.setattr(ovmod, "cpu_devices", lambda: ["GPU"])
    assert auto_backend(tiny[1])[0] == "onnxruntime"
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "openvino" else real(n, *a))
    name, why = auto_backend(tiny[1])
    assert name == "onnxruntime" and "pip install 'jetseg[openvino]'" in why


def test_auto_falls_back_to_onnxruntime_when_openvino_cannot_compile(tiny, monkeypatch,
                                                                     caplog):
    import jetseg.backends.openvino as ovmod
    monkeypatch.setattr("jetseg.backends.auto_backend", lambda p, pr=None: ("openvino", "x"))

    def refuse(self, *a, **kw):
        raise ovmod.OvCannotRun("OpenVINO cannot compile the model for the CPU: op Foo",
                                path=tiny[1])
    monkeypatch.setattr(ovmod.OvBackend, "__init__", refuse)
    with caplog.at_level(logging.WARNING, logger="jetseg"):
        b = open_backend(tiny[1])
    assert b.name == "onnxruntime" and "op Foo; using onnxruntime" in caplog.text
    with pytest.raises(JetsegError, match="op Foo"):
        open_backend(tiny[1], "openvino")              # asked for by name: no fallback


def test_segmenter_and_cli_run_on_openvino(full, tmp_path):
    frame = rng_frame(96, 72, seed=5)
    a = Segmenter(full, backend="openvino", threads=1).process(frame)
    b = Segmenter(full, backend="onnxruntime").process(frame)
    assert a.segmenter.backend.name == "openvino"
    assert np.array_equal(a.classes, b.classes)
    assert np.abs(a.overlay().astype(int) - b.overlay()).max() <= 1
    r = run_cli("info", full, "--backend", "openvino")
    assert r.returncode == 0 and "backend:   openvino (CPU (LATENCY" in r.stdout, r.stderr
    r = run_cli("doctor")
    assert "] auto backend" in r.stdout and "for an .onnx (" in r.stdout


def test_precision_reaches_openvino_from_the_segmenter_and_the_cli(full, tmp_path, caplog):
    """--precision / Segmenter(precision=): OpenVINO's inference precision (default fp32);
    ONNX Runtime, which runs the graph's own types, says it ignores it; int8 is refused on
    OpenVINO with what to do instead (a Q/DQ model runs in INT8 by itself)."""
    import cv2
    frame = rng_frame(96, 72, seed=5)
    seg = Segmenter(full, backend="openvino", threads=1, precision="bf16")
    assert seg.backend.config["INFERENCE_PRECISION_HINT"] == "bf16"
    assert Segmenter(full, backend="openvino", threads=1).backend.config[
        "INFERENCE_PRECISION_HINT"] == "f32"
    assert seg.process(frame).classes.shape == (72, 96)
    with caplog.at_level(logging.WARNING, logger="jetseg"):
        Segmenter(full, backend="onnxruntime", precision="bf16")
    assert "option precision='bf16' does not apply to onnxruntime: ignored" in caplog.text
    with pytest.raises(JetsegError, match="runs in INT8 on OpenVINO by itself"):
        Segmenter(full, backend="openvino", precision="int8")
    img = str(tmp_path / "f.png")
    cv2.imwrite(img, frame)
    r = run_cli("segment", "--model", full, "--backend", "openvino", "--precision", "fp16",
                img, str(tmp_path / "out.png"))
    assert r.returncode == 0 and (tmp_path / "out.png").exists(), r.stderr
    r = run_cli("segment", "--model", full, "--backend", "openvino", "--precision", "int8",
                img, str(tmp_path / "out2.png"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_doctor_names_openvino_and_whether_this_cpu_has_bf16():
    import openvino
    caps = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    r = run_cli("doctor")
    line = [x for x in r.stdout.splitlines() if "] OpenVINO" in x]
    assert len(line) == 1 and openvino.__version__.split("-")[0] in line[0], r.stdout
    assert ("--precision bf16 runs fp32 models faster" in line[0]) == ("BF16" in caps)
