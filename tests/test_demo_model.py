"""The bundled placeholder model engines/camvid-demo.onnx and the sample frames.

Made by ``python -m jetseg_export.demo_model`` (see engines/README.md). Checks what the
README promises of it: it loads from the file alone, names CamVid's 11 classes, runs the
samples, its numpy features are the ONNX graph's, and the val mIoU in its metadata is what
it scores on CamVid val (when the dataset is beside the repo).
"""
import numpy as np
import pytest

from tests.helpers.common import ROOT
from tests.helpers.tinymodels import normalise

MODEL = ROOT / "engines" / "camvid-demo.onnx"
SAMPLES = sorted((ROOT / "samples").glob("*.jpg"))
CAMVID = ROOT.parent / "shared" / "datasets" / "camvid"
CAMVID_CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                  "Car", "Pedestrian", "Bicyclist"]
CAMVID_COLORS = [(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
                 (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0),
                 (0, 128, 192)]


@pytest.fixture(scope="module")
def seg():
    from jetseg import Segmenter
    assert MODEL.is_file(), "{} is missing (see engines/README.md to rebuild it)".format(MODEL)
    s = Segmenter(str(MODEL))
    yield s
    s.close()


@pytest.fixture(scope="module")
def frames():
    import cv2
    assert len(SAMPLES) >= 2, "samples/*.jpg are missing"
    return [(p.name, cv2.imread(str(p))) for p in SAMPLES]


def test_file_is_small_and_self_describing(seg):
    assert MODEL.stat().st_size < 1024 * 1024
    assert seg.classes == CAMVID_CLASSES
    assert [tuple(c[:3]) for c in seg.colors] == CAMVID_COLORS
    extra = seg.info.extra
    assert isinstance(extra.get("miou"), float) and 0.0 < extra["miou"] < 1.0
    assert "placeholder" in extra["arch"]
    assert extra["dataset"] == "CamVid train (367 frames)"
    assert seg.info.graph["preprocess"] and seg.info.graph["upsample"]
    assert seg.info.graph["ignore_class"] is None
    assert (seg.info.width, seg.info.height) == (480, 360)
    assert set(seg.info.outputs) == {"scores", "classes", "overlay", "confidence"}


def test_samples_run(seg, frames):
    for name, frame in frames:
        assert frame is not None and frame.shape == (360, 480, 3), name
        res = seg.process(frame)
        assert res.classes.shape == (360, 480) and res.classes.dtype == np.uint8
        assert res.classes.max() < 11
        assert res.scores is None                 # not needed here, so not fetched
        from jetseg import Segmenter
        kept = Segmenter(str(MODEL), keep_scores=True).process(frame)
        assert kept.scores.shape == (11, 90, 120)
        assert np.array_equal(kept.classes, res.classes)
        assert res.overlay().shape == (360, 480, 3) and res.overlay().dtype == np.uint8
        assert res.mask().shape == (360, 480, 3)
        conf = res.confidence
        assert conf.shape == (360, 480) and 0.0 < conf.min() and conf.max() <= 1.0 + 1e-6
        fr = res.class_fractions()
        assert list(fr) == CAMVID_CLASSES and abs(sum(fr.values()) - 1.0) < 1e-6
        # a street scene, seen by a colour-and-position model: much sky in the top tenth,
        # mostly road in the bottom tenth, and more than a few classes in the frame
        top = np.bincount(res.classes[:36].ravel(), minlength=11) / (36.0 * 480)
        bottom = np.bincount(res.classes[-36:].ravel(), minlength=11) / (36.0 * 480)
        assert top[CAMVID_CLASSES.index("Sky")] > 0.25, (name, top)
        assert bottom.argmax() == CAMVID_CLASSES.index("Road"), (name, bottom)
        assert len(np.unique(res.classes)) >= 5, name


def test_numpy_features_equal_the_onnx_graph(frames):
    """The features the model was trained on are what its graph computes."""
    import onnx
    import onnxruntime as ort

    from jetseg_export import demo_model as dm
    model = onnx.load(str(MODEL))
    weights = dm.weights_from_model(model)
    assert [w.shape for w, _ in weights][0] == (weights[0][0].shape[0], dm.NUM_FEATURES)
    sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    name, frame = frames[0]
    scores = sess.run(["logits"], {"image": frame[None]})[0][0]
    # independent normalisation (tests/helpers/tinymodels.py), then the numpy features and MLP
    want = dm.mlp(dm.features(normalise(frame)), weights)
    assert np.abs(scores - want).max() < 1e-3
    # and the core graph rebuilt from the weights matches too (the script's own check)
    assert dm.check_core(dm.core_graph(weights), weights, frame) < 1e-3


def _confusion(pred, lab, num=11):
    keep = lab < num                                   # 11 = void, ignored
    return np.bincount(lab[keep].astype(np.int64) * num + pred[keep].astype(np.int64),
                       minlength=num * num).reshape(num, num)


def test_recorded_val_miou_is_reproduced(seg):
    if not (CAMVID / "val").is_dir():
        pytest.skip("CamVid not found at {} (real-data tests read ../shared/datasets/camvid)"
                    .format(CAMVID))
    import cv2
    conf = np.zeros((11, 11), np.int64)
    files = sorted((CAMVID / "val").glob("*.jpg"))
    assert len(files) == 101
    for f in files:
        lab = cv2.imread(str(CAMVID / "valannot" / (f.stem + ".png")), cv2.IMREAD_GRAYSCALE)
        conf += _confusion(seg.process(cv2.imread(str(f))).classes.ravel(), lab.ravel())
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    miou = float(np.mean(tp[union > 0] / union[union > 0]))
    recorded = seg.info.extra["miou"]
    assert abs(miou - recorded) < 0.005, (miou, recorded)
