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


def test_engine_files_need_tensorrt_installed(tmp_path):
    p = tmp_path / "m.engine"
    p.write_bytes(b"x")
    with pytest.raises(JetsegError, match="TensorRT"):
        open_backend(str(p))
    with pytest.raises(JetsegError, match="unknown backend"):
        open_backend(str(p), "openvino")
