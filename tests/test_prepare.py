"""``Segmenter.prepare`` + ``process(prepared=)``, the split a Pipeline runs across its capture
and inference threads, gives what ``process(frame)`` gives, for the three routes a frame can
take: a net-size model that preprocesses in its graph, a plain model (CPU normalisation),
and a frame graph beside the model for frames of its size; on every installed CPU backend."""
import importlib.util

import numpy as np
import onnx
import pytest

from jetseg import JetsegError, Segmenter
from jetseg.cli.bench import MemorySource
from jetseg.io.pipeline import Pipeline
from jetseg_export.compose import compose
from tests.helpers.common import COLORS5, NAMES5, rng_frame
from tests.helpers.tinymodels import TinyNet

BACKENDS = [b for b in ("onnxruntime", "openvino") if importlib.util.find_spec(b)]
FRAME = (256, 144)          # the frame graph's size; the nets run at 64x48


def _models(tmp_path):
    """{route: (model path, Segmenter options, frame size that takes the route)}."""
    net = TinyNet(num_classes=5, width=64, height=48, down=4, seed=6)
    graph = str(tmp_path / "net.onnx")
    onnx.save(compose(net.onnx(), NAMES5, COLORS5, scores=True), graph)
    onnx.save(compose(net.onnx(), NAMES5, COLORS5, frame_size=FRAME, filter_mode="linear"),
              str(tmp_path / "net.{}x{}.onnx".format(*FRAME)))
    plain = net.save(tmp_path / "plain.onnx")                 # no pre/post in the graph
    return {"net size": (graph, {}, (96, 72)),
            "CPU normalisation": (plain, {"labels": NAMES5, "colors": COLORS5}, (96, 72)),
            "frame graph": (graph, {}, FRAME)}


def _same(a, b):
    assert a.segmenter is b.segmenter
    assert np.array_equal(a.classes, b.classes)
    assert np.array_equal(a.overlay(), b.overlay())
    assert np.array_equal(a.mask(), b.mask())
    assert a.class_counts().tolist() == b.class_counts().tolist()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("route", ["net size", "CPU normalisation", "frame graph"])
def test_prepared_frames_give_what_process_gives(tmp_path, backend, route):
    path, kw, (w, h) = _models(tmp_path)[route]
    seg = Segmenter(path, backend=backend, threads=1, **kw)
    frames = [rng_frame(w, h, seed=s) for s in range(4)]
    prepared = [seg.prepare(f) for f in frames]             # all in flight at once
    runs = prepared[0].segmenter
    assert (runs is not seg) == (route == "frame graph")    # routed as process routes
    if route == "frame graph":
        assert runs.frame_size == FRAME and runs.path.endswith("net.256x144.onnx")
    tensors = [list(p.feeds.values())[0] for p in prepared]
    assert tensors[0].shape == tensors[1].shape
    for i in range(len(tensors)):
        for j in range(i + 1, len(tensors)):
            assert not np.shares_memory(tensors[i], tensors[j])     # buffers of their own
    for f, t in zip(frames, tensors):       # what feeds() (the one-buffer path) makes
        assert np.array_equal(t, runs.feeds(f)[runs.info.input_name])
    alone = Segmenter(runs.path, backend=backend, threads=1, frame_graph=None, **kw)
    for f, p in zip(frames, prepared):
        ms = p.ms
        a, b = seg.process(f), seg.process(prepared=p)
        _same(a, b)
        assert b.timings["preprocess_ms"] == ms > 0 and b.timings["inference_ms"] > 0
        c = alone.process(f)        # the model that runs it, opened on its own
        assert np.array_equal(b.classes, c.classes) and np.array_equal(b.overlay(), c.overlay())
    seen = []
    Pipeline(MemorySource(frames, len(frames)), seg, [], on_result=[seen.append]).run()
    assert len(seen) == len(frames)
    for f, res in zip(frames, seen):
        _same(res, seg.process(f))
    seg.close()


def test_buffers_are_reused_and_a_prepared_frame_runs_once_on_its_own_segmenter(tmp_path):
    path, kw, (w, h) = _models(tmp_path)["CPU normalisation"]
    seg = Segmenter(path, backend="onnxruntime", threads=1, **kw)
    other = Segmenter(path, backend="onnxruntime", threads=1, **kw)
    p = seg.prepare(rng_frame(w, h, seed=1))
    tensor = list(p.feeds.values())[0]
    seg.process(prepared=p)
    q = seg.prepare(rng_frame(w, h, seed=2))        # the set the model has read: taken again
    assert np.shares_memory(list(q.feeds.values())[0], tensor)
    with pytest.raises(JetsegError) as e:
        seg.process(prepared=p)
    assert "twice" in str(e.value)
    with pytest.raises(JetsegError) as e:
        other.process(prepared=q)
    assert "another Segmenter" in str(e.value)
    seg.process(prepared=q)
