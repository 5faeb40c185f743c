import os

import numpy as np
import pytest

from jetseg import JetsegError
from jetseg.backends import open_backend
from jetseg.backends.onnxruntime import choose_providers, parse_providers


def test_default_providers_prefer_tensorrt_then_cuda_with_engine_cache(tmp_path):
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    got = choose_providers(avail, None, str(tmp_path / "m.onnx"))
    assert got[0][0] == "TensorrtExecutionProvider"
    assert got[0][1]["trt_engine_cache_enable"] and got[0][1]["trt_fp16_enable"]
    assert got[0][1]["trt_engine_cache_path"] == str(tmp_path / ".jetseg-cache")
    assert got[1:] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["AzureExecutionProvider", "CPUExecutionProvider"]) == [
        "CPUExecutionProvider"]


def test_requested_providers_must_exist():
    assert parse_providers("cuda, cpu") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(JetsegError, match="no CUDAExecutionProvider"):
        choose_providers(["CPUExecutionProvider"], parse_providers("cuda,cpu"))


def test_threads_and_cpu_provider_run_the_model(tiny):
    net, path = tiny
    b = open_backend(path, "onnxruntime", threads=1, providers="cpu")
    assert b.providers == ["CPUExecutionProvider"]
    assert [t.name for t in b.inputs] == ["input_0"] and b.inputs[0].shape == [1, 3, 24, 32]
    x = np.zeros((1, 3, 24, 32), np.float32)
    out = b.run({"input_0": x})["output_0"]
    np.testing.assert_allclose(out[0], net.logits(x[0]), atol=1e-5)


def test_onnxruntime_threads_default_to_physical_cores_and_pool_threads_do_not_spin(
        tiny, monkeypatch, tmp_path):
    """Default intra-op threads: every physical core (hyperthreads count once); idle pool
    threads sleep rather than spin on the cores the capture and render threads need."""
    import onnxruntime as ort
    from jetseg.backends import cpu_cores, default_threads
    seen = []
    real = ort.InferenceSession

    def spy(path, opts, **kw):
        seen.append((opts.intra_op_num_threads,
                     opts.get_session_config_entry("session.intra_op.allow_spinning")))
        return real(path, opts, **kw)
    monkeypatch.setattr(ort, "InferenceSession", spy)
    b = open_backend(tiny[1], "onnxruntime", providers="cpu")
    assert b.threads == default_threads() == cpu_cores()
    assert open_backend(tiny[1], "onnxruntime", providers="cpu", threads=3).threads == 3
    assert seen == [(default_threads(), "0"), (3, "0")]
    import jetseg.backends as backends
    monkeypatch.setattr(backends, "SYSFS_CPU", str(tmp_path))     # no topology: logical CPUs
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert default_threads() == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5})
    assert default_threads() == 1
    for cpu, siblings in ((0, "0,4"), (1, "1,5"), (4, "0,4"), (5, "1,5")):    # 2 cores, HT
        d = tmp_path / "cpu{}".format(cpu) / "topology"
        d.mkdir(parents=True)
        (d / "thread_siblings_list").write_text(siblings + "\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 4, 5})
    assert cpu_cores() == 2 and default_threads() == 2


def test_engine_files_need_tensorrt_installed(tmp_path):
    p = tmp_path / "m.engine"
    p.write_bytes(b"x")
    with pytest.raises(JetsegError, match="TensorRT"):
        open_backend(str(p))
    with pytest.raises(JetsegError, match="unknown backend"):
        open_backend(str(p), "tflite")
    for other in ("onnxruntime", "openvino"):
        with pytest.raises(JetsegError, match="engine file runs on TensorRT only, not " + other):
            open_backend(str(p), other)


def test_feeds_checked_once_for_every_backend(tiny):
    """Backend.run checks names, dtype and shape before any backend runs (the TensorRT
    runner gets the same checks: tests/test_tensorrt.py)."""
    _, path = tiny
    b = open_backend(path, "onnxruntime", providers="cpu")
    x = np.zeros((1, 3, 24, 32), np.float32)
    cases = [({}, "no value for model input 'input_0'"),
             ({"input_0": x, "extra": x}, "the model has no input 'extra'"),
             ({"input_0": x.astype(np.float64)}, "input 'input_0' is float64; the model "
                                                  "takes float32"),
             ({"input_0": x[:, :, :20]}, r"input 'input_0' has shape \(1, 3, 20, 32\); "
                                         r"the model takes \[1, 3, 24, 32\]")]
    for feeds, why in cases:
        with pytest.raises(JetsegError, match=why):
            b.run(feeds)
    with pytest.raises(JetsegError, match="the model has no output 'scores'.*output_0"):
        b.run({"input_0": x}, ["scores"])
    assert list(b.run({"input_0": x}, ["output_0"])) == ["output_0"]


def test_onnxruntime_errors_keep_their_own_message(tmp_path):
    """Inputs that match the declared ones but make the graph fail: ONNX Runtime's own
    words reach the one-line error, not a guess about the input size."""
    import onnx
    from onnx import TensorProto, helper
    g = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    p = str(tmp_path / "reshape.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), p)
    b = open_backend(p, "onnxruntime", providers="cpu")
    with pytest.raises(JetsegError) as e:
        b.run({"x": np.zeros((2, 3), np.float32), "shape": np.array([4, 4], np.int64)})
    msg = str(e.value)
    assert msg.startswith(p) and "ONNX Runtime failed: " in msg and "\n" not in msg
    assert "cannot be reshaped to the requested shape" in msg and "reshape_helper.h" not in msg
    assert "input size" not in msg


def test_backend_options_are_explicit(tiny, caplog):
    from jetseg.backends import BACKEND_NAMES
    _, path = tiny
    assert BACKEND_NAMES == ("auto", "onnxruntime", "openvino", "tensorrt")
    with pytest.raises(JetsegError, match="unknown backend option.*thread.*threads"):
        open_backend(path, "onnxruntime", thread=2)
    from jetseg.backends.onnxruntime import OrtBackend
    with pytest.raises(TypeError):
        OrtBackend(path, thraeds=1)                    # misspelled: not swallowed
    b = open_backend(path, "onnxruntime", providers="cpu", memory="auto", precision=None)
    assert b.name == "onnxruntime"                     # TensorRT's options at their defaults
    import logging
    with caplog.at_level(logging.WARNING, logger="jetseg"):
        open_backend(path, "onnxruntime", providers="cpu", precision="fp16")
    assert "precision='fp16' does not apply to onnxruntime" in caplog.text


def _composed(tmp_path):
    import onnx
    from jetseg_export.compose import compose
    from tests.helpers.common import COLORS5, NAMES5
    from tests.helpers.tinymodels import TinyNet
    path = str(tmp_path / "full.onnx")
    onnx.save(compose(TinyNet(width=64, height=48, seed=2).onnx(), NAMES5, COLORS5,
                      scores=True), path)
    return path


def test_pruned_graph_keeps_only_what_the_kept_outputs_need(tmp_path):
    """ONNX Runtime runs every node of a graph, also those no fetched output needs: the
    pruned copy (raw protobuf, no onnx package) drops the other outputs and their nodes."""
    import onnx
    from jetseg.backends.onnx_proto import prune_outputs, read_onnx_metadata
    path = _composed(tmp_path)
    full = onnx.load(path)
    small = onnx.load_from_string(prune_outputs(path, ["classes"]))
    onnx.checker.check_model(small)
    assert [o.name for o in small.graph.output] == ["classes"]
    ops = [n.op_type for n in small.graph.node]
    assert "Round" in [n.op_type for n in full.graph.node] and "Round" not in ops  # overlay
    assert len(ops) < len(full.graph.node) and "ArgMax" in ops
    assert read_onnx_metadata(prune_outputs(path, ["classes"])) == read_onnx_metadata(path)
    assert prune_outputs(path, [o.name for o in full.graph.output]) is None   # nothing to drop
    from onnx import TensorProto, helper
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "b", [],
                               [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])])
    g = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch),
         helper.make_node("Neg", ["x"], ["n"])], "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info("n", TensorProto.FLOAT, [1])])
    sub = str(tmp_path / "if.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), sub)
    assert prune_outputs(sub, ["y"]) is None        # bodies may read outer names: not pruned


def test_onnxruntime_runs_a_pruned_session_for_fewer_outputs(tmp_path):
    path = _composed(tmp_path)
    b = open_backend(path, "onnxruntime", providers="cpu", threads=1)
    frame = np.random.RandomState(0).randint(0, 256, (1, 48, 64, 3)).astype(np.uint8)
    every = b.run({"image": frame})
    alone = b.run({"image": frame}, ["classes"])
    assert list(alone) == ["classes"] and np.array_equal(alone["classes"], every["classes"])
    session = b._sessions[frozenset(["classes"])]
    assert session is not b.session and [o.name for o in session.get_outputs()] == ["classes"]
    both = b.run({"image": frame}, ["overlay", "classes"])        # not the scores
    assert [o.name for o in b._sessions[frozenset(both)].get_outputs()] == ["classes",
                                                                          "overlay"]
    assert np.array_equal(both["overlay"], every["overlay"])
    names = [o.name for o in b.outputs]
    b.run({"image": frame}, names[::-1])
    assert b._sessions[frozenset(names)] is b.session          # all of them: the whole graph
