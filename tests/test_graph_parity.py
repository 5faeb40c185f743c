"""The exported graph (pre/post-processing inside) and the CPU path give the same results.

One source of truth: jetseg_export.compose writes the graph; jetseg.core.processing is the CPU path
for plain models. Same net, same frame: class ids equal, overlay within 1 grey level.
"""
import numpy as np
import onnx
import pytest

from tests.helpers.common import COLORS5, NAMES5, rng_frame
from jetseg import Segmenter
from jetseg.core.modelinfo import ModelInfo
from jetseg_export.compose import compose
from tests.helpers.refs import argmax_checked, bilinear_half_pixel
from tests.helpers.tinymodels import TinyNet, normalise


@pytest.fixture(params=["onnxruntime", "openvino"])
def backend(request):
    """Both CPU backends run the same graphs (OpenVINO at its default fp32 precision)."""
    pytest.importorskip(request.param)
    return request.param


def _pair(tmp_path, net, **kw):
    plain = net.save(tmp_path / "plain.onnx")
    full = tmp_path / "full.onnx"
    onnx.save(compose(net.onnx(), NAMES5, COLORS5, **kw), str(full))
    return plain, str(full)


def _compare(plain, full, frame, ignore=None, alpha=150, backend="auto"):
    cpu = Segmenter(plain, labels=NAMES5, colors=COLORS5, filter_mode="smooth",
                    ignore_class=ignore, alpha=alpha, backend=backend).process(frame)
    gpu = Segmenter(full, filter_mode="smooth", backend=backend).process(frame)
    assert backend in ("auto", cpu.segmenter.backend.name, gpu.segmenter.backend.name)
    assert gpu.segmenter.info.graph["argmax"] and gpu._classes_low is not None
    diff = cpu.classes != gpu.classes
    assert diff.mean() <= 1e-4, "{} of {} class ids differ".format(diff.sum(), diff.size)
    over = np.abs(cpu.overlay().astype(int) - gpu.overlay().astype(int))
    assert over[~diff].max() <= 1
    return cpu, gpu


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_graph_equals_cpu_path_on_random_frames(tmp_path, seed, backend):
    net = TinyNet(num_classes=5, width=64, height=48, down=4, seed=seed)
    plain, full = _pair(tmp_path, net, confidence=True, scores=True)
    frame = rng_frame(64, 48, seed=seed)
    cpu, gpu = _compare(plain, full, frame, backend=backend)
    assert np.array_equal(gpu.overlay(), gpu._graph_overlay)     # the graph's own overlay
    np.testing.assert_allclose(cpu.confidence, gpu.confidence, atol=1e-5)
    # and both agree with a numpy reference of the whole chain
    up = bilinear_half_pixel(net.logits(normalise(frame)), 48, 64)
    argmax_checked(up, gpu.classes)


def test_graph_equals_cpu_path_with_ignore_class_and_alpha(tmp_path, backend):
    net = TinyNet(num_classes=5, width=64, height=48, down=4, seed=4)
    frame = rng_frame(64, 48, seed=4)
    top = int(np.bincount(net.logits(normalise(frame)).argmax(0).ravel()).argmax())
    plain, full = _pair(tmp_path, net, ignore_class=top, alpha=90)
    cpu, gpu = _compare(plain, full, frame, ignore=top, alpha=90, backend=backend)
    assert top not in gpu.classes
    assert gpu.segmenter.alpha == 90 and gpu.segmenter.ignore_class == top


def test_graph_equals_cpu_path_on_camvid_frames(tmp_path, camvid_frames, backend):
    import cv2
    net = TinyNet(num_classes=5, width=160, height=120, down=8, seed=5)
    plain, full = _pair(tmp_path, net)
    for frame in camvid_frames:
        _compare(plain, full, cv2.resize(frame, (160, 120), interpolation=cv2.INTER_AREA),
                 backend=backend)


def test_graph_model_on_a_larger_frame_uses_its_scores(tmp_path, backend):
    """Frame bigger than the net: smooth mode upsamples the graph's raw scores on the CPU."""
    net = TinyNet(num_classes=5, width=32, height=24, down=4, seed=6)
    plain, full = _pair(tmp_path, net, scores=True)
    frame = rng_frame(64, 48, seed=6)
    a = Segmenter(plain, filter_mode="smooth", backend=backend).process(frame)
    b = Segmenter(full, filter_mode="smooth", backend=backend).process(frame)
    assert np.array_equal(a.classes, b.classes)


def test_metadata_travels_in_the_file(tmp_path):
    net = TinyNet(num_classes=5, width=64, height=48)
    _, full = _pair(tmp_path, net, ignore_class=2, extra={"arch": "tiny", "miou": 0.5})
    props = dict((p.key, p.value) for p in onnx.load(full).metadata_props)
    info = ModelInfo.from_metadata(props)
    assert info.classes == NAMES5 and info.colors == [tuple(c) for c in COLORS5]
    assert (info.width, info.height, info.input_layout, info.input_dtype) == (64, 48, "NHWC",
                                                                             "uint8")
    assert info.graph["ignore_class"] == 2 and info.graph["overlay"]
    assert info.extra == {"arch": "tiny", "miou": 0.5}
    seg = Segmenter(full)                       # the file alone is enough
    assert seg.classes == NAMES5 and seg.ignore_class == 2 and seg.net_size == (64, 48)


def test_metadata_round_trip_and_future_schema():
    info = ModelInfo()
    info.classes, info.colors = ["a", "b"], [(1, 2, 3), (4, 5, 6, 7)]
    info.mean = (0.1, 0.2, 0.3)
    back = ModelInfo.from_metadata(info.to_metadata())
    assert back.classes == ["a", "b"] and back.colors == [(1, 2, 3), (4, 5, 6, 7)]
    assert back.mean == (0.1, 0.2, 0.3) and back.has_metadata
    meta = info.to_metadata()
    meta["jetseg.schema"] = "99"
    from jetseg import JetsegError
    with pytest.raises(JetsegError, match="newer than this jetseg"):
        ModelInfo.from_metadata(meta, source="x.onnx")


def test_output_plan_fetches_the_graph_overlay_only_where_it_is_the_answer(tmp_path,
                                                                          backend):
    """Decided once per Segmenter: at the net's size the graph's overlay is fetched and used;
    another alpha or other colours, or a resized frame, draw it on the CPU instead."""
    net = TinyNet(num_classes=5, width=64, height=48, down=4, seed=7)
    _, full = _pair(tmp_path, net, scores=True)
    seg = Segmenter(full, backend=backend)
    names = seg.info.outputs
    assert names["overlay"] in seg.plan.fetch(True)
    assert names["overlay"] not in seg.plan.fetch(False)
    frame = rng_frame(64, 48, seed=7)
    res = seg.process(frame)
    assert res.overlay() is res._graph_overlay
    assert res.overlay(alpha=40) is not res._graph_overlay          # asked at another alpha
    other = Segmenter(full, colors=[(1, 2, 3)] * 5, backend=backend)
    assert names["overlay"] not in other.plan.fetch(True) and not other.plan.graph_overlay
    assert np.array_equal(other.process(frame).overlay()[0, 0],
                          np.rint(frame[0, 0] * (1 - 150 / 255.) + np.array([3, 2, 1]) * 150 / 255.))
    big = seg.process(rng_frame(96, 72, seed=7))
    assert big._graph_overlay is None and big.overlay().shape == (72, 96, 3)
