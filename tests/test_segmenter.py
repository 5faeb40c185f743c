"""Segmenter on plain ONNX models (no jetseg metadata): the CPU pre/post path vs numpy."""
import numpy as np
import pytest

from tests.helpers.common import COLORS5, NAMES5, rng_frame
from jetseg import JetsegError, Segmenter
from tests.helpers.refs import argmax_checked, bilinear_half_pixel, blend
from tests.helpers.tinymodels import TinyNet, normalise


def test_plain_model_matches_numpy_reference(tiny, labels_files):
    net, path = tiny
    seg = Segmenter(path, labels=labels_files[0], colors=labels_files[1], filter_mode="point")
    assert seg.classes == NAMES5 and seg.colors == COLORS5
    frame = rng_frame(32, 24)
    res = seg.process(frame)
    ref = net.logits(normalise(frame))
    np.testing.assert_allclose(res.scores, ref, atol=1e-4)
    argmax_checked(ref, res.classes_lowres)
    # point mode: every net output pixel covers a 4x4 block of the frame
    full = np.repeat(np.repeat(res.classes_lowres, 4, 0), 4, 1)
    assert res.classes.shape == (24, 32) and np.array_equal(res.classes, full)
    assert np.abs(res.overlay().astype(int) - blend(frame, full, COLORS5, 150)).max() <= 1
    bgr = np.array([c[:3][::-1] for c in COLORS5], np.uint8)
    assert np.array_equal(res.mask(), bgr[full])
    counts = np.bincount(full.ravel(), minlength=5)
    fr = res.class_fractions()
    assert list(fr) == NAMES5
    assert np.allclose([fr[n] for n in NAMES5], counts / counts.sum())


def test_smooth_mode_upsamples_scores_before_argmax(tiny):
    net, path = tiny
    seg = Segmenter(path, filter_mode="smooth")
    frame = rng_frame(32, 24, seed=3)
    res = seg.process(frame)
    up = bilinear_half_pixel(net.logits(normalise(frame)), 24, 32)
    argmax_checked(up, res.classes)
    # smooth edges: more distinct boundaries than the 4x4 blocks of point mode
    point = seg.process(frame).classes_lowres.repeat(4, 0).repeat(4, 1)
    assert (res.classes != point).any()


def test_linear_mode_interpolates_colours(tiny, labels_files):
    net, path = tiny
    seg = Segmenter(path, colors=labels_files[1], filter_mode="linear")
    frame = rng_frame(32, 24, seed=4)
    res = seg.process(frame)
    low = res.classes_lowres
    bgr = np.array([c[:3][::-1] for c in COLORS5], np.float64)
    ref = bilinear_half_pixel(bgr[low].transpose(2, 0, 1), 24, 32).transpose(1, 2, 0)
    assert np.abs(res.mask().astype(float) - ref).max() <= 1.0
    # overlay: colour and alpha interpolated (as jetson-inference samples RGBA), then blended
    a = np.array([c[3] if len(c) > 3 else 150 for c in COLORS5], np.float64) / 255
    col = bilinear_half_pixel(bgr[low].transpose(2, 0, 1), 24, 32).transpose(1, 2, 0)
    aa = bilinear_half_pixel(a[low][None], 24, 32)[0][:, :, None]
    ref = frame * (1 - aa) + np.rint(col) * aa
    assert np.abs(res.overlay().astype(float) - ref).max() <= 1.0


def test_ignore_class_is_never_chosen(tiny):
    net, path = tiny
    frame = rng_frame(32, 24, seed=5)
    ref = net.logits(normalise(frame))
    top = np.bincount(ref.argmax(0).ravel(), minlength=5).argmax()
    res = Segmenter(path, labels=NAMES5, ignore_class=NAMES5[top]).process(frame)
    assert top not in res.classes
    masked = ref.copy()
    masked[top] = -np.inf
    argmax_checked(np.where(np.isinf(masked), -1e9, masked), res.classes_lowres)
    assert Segmenter(path, ignore_class=int(top)).process(frame).classes_lowres.tolist() == \
        res.classes_lowres.tolist()


def test_frames_of_other_sizes_come_back_at_their_own_size(tiny):
    _, path = tiny
    seg = Segmenter(path, filter_mode="smooth")
    for w, h in ((64, 48), (50, 30), (17, 11)):
        res = seg.process(rng_frame(w, h))
        assert res.classes.shape == (h, w) and res.overlay().shape == (h, w, 3)
        assert res.mask().shape == (h, w, 3)
        assert res.confidence.shape == (h, w)
        assert 0.2 <= res.confidence.min() and res.confidence.max() <= 1.0


def test_rgb_grey_and_bgra_frames(tiny):
    _, path = tiny
    seg = Segmenter(path)
    frame = rng_frame(32, 24, seed=7)
    base = seg.process(frame).classes
    assert np.array_equal(seg.process(np.ascontiguousarray(frame[:, :, ::-1]), rgb=True).classes,
                          base)
    bgra = np.dstack([frame, np.full((24, 32), 255, np.uint8)])
    assert np.array_equal(seg.process(bgra).classes, base)
    grey = frame[:, :, 1]
    assert np.array_equal(seg.process(grey).classes,
                          seg.process(np.dstack([grey, grey, grey])).classes)
    assert np.array_equal(seg.process(grey[:, :, None]).classes,
                          seg.process(np.dstack([grey, grey, grey])).classes)


@pytest.mark.parametrize("frame, message", [
    (np.zeros((24, 32, 3), np.float32), "dtype float32"),
    (np.zeros((24, 32, 2), np.uint8), "shape (24, 32, 2)"),
    (np.zeros((0, 32, 3), np.uint8), "empty"),
    ([[1, 2, 3]], "not a numpy array"),
])
def test_bad_frames_say_what_is_wrong(tiny, frame, message):
    with pytest.raises(JetsegError) as e:
        Segmenter(tiny[1]).process(frame)
    assert message in str(e.value) and "fix:" in str(e.value)


def test_mean_std_and_channel_order_flags(tmp_path):
    net = TinyNet(num_classes=3, width=16, height=16, down=2, seed=2)
    path = net.save(tmp_path / "m.onnx")
    frame = rng_frame(16, 16, seed=9)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.3, 0.4)
    res = Segmenter(path, mean="0.5,0.4,0.3", std=std, channel_order="BGR").process(frame)
    ref = net.logits(normalise(frame, mean=mean, std=std, order="BGR"))
    np.testing.assert_allclose(res.scores, ref, atol=1e-4)


def test_dynamic_input_size_model(tmp_path):
    net = TinyNet(num_classes=4, down=2, dynamic=True)
    path = net.save(tmp_path / "dyn.onnx")
    frame = rng_frame(20, 12, seed=1)
    res = Segmenter(path).process(frame)                 # runs at the frame's own size
    assert res.scores.shape == (4, 6, 10)
    np.testing.assert_allclose(res.scores, net.logits(normalise(frame)), atol=1e-4)
    res = Segmenter(path, input_size="8x4").process(frame)
    assert res.scores.shape == (4, 2, 4) and res.classes.shape == (12, 20)


def test_model_without_labels_gets_numbered_classes_and_a_palette(tiny):
    seg = Segmenter(tiny[1])
    assert seg.classes == ["class #{}".format(i) for i in range(5)]
    assert len(set(seg.colors)) == 5


def test_visualize_composite_layout(tiny):
    res = Segmenter(tiny[1]).process(rng_frame(32, 24))
    comp = res.visualize("overlay,mask")
    assert comp.shape == (24, 48, 3)
    assert np.array_equal(comp[:, :32], res.overlay())
    assert np.array_equal(comp[:12, 32:], res.mask()[1::2, 1::2])
    assert not comp[12:, 32:].any()


def test_legend_lists_classes(tiny):
    seg = Segmenter(tiny[1], labels=NAMES5, colors=COLORS5)
    img = seg.legend()
    assert img.shape[0] >= 5 * 20 and img.dtype == np.uint8
    # each class's swatch colour appears in the legend
    for c in COLORS5:
        assert (img == np.array(c[:3][::-1], np.uint8)).all(axis=2).any()
    assert seg.legend(present=[1]).shape[0] < img.shape[0]
