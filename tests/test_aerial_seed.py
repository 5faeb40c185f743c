"""The aerial seed flow: CamVid labels -> a sky/ground dataset in NVIDIA's DIGITS layout
(jetseg_export.aerial) that jetseg's DIGITS reader loads and ``jetseg train --format digits``
trains FCN-AlexNet on."""
import os

import cv2
import numpy as np
import pytest

from tests.helpers.common import CAMVID
from jetseg.errors import JetsegError
from jetseg.eval.datasets import open_dataset
from jetseg_export import aerial

SEQS = {"AAA001": 3, "BBB002": 2, "CCC003": 2}


@pytest.fixture(scope="module")
def fake_camvid(tmp_path_factory):
    """CamVid's layout with three sequences: rows of sky (0), every other class (1..10) in
    columns below it, and a void (11) stripe; sequences spread over train/ and val/ as
    CamVid's are."""
    root = tmp_path_factory.mktemp("camvid")
    rng = np.random.RandomState(0)
    n = 0
    for seq, count in sorted(SEQS.items()):
        for i in range(count):
            split = "val" if (seq == "CCC003" and i == 1) else "train"
            for d in (split, split + "annot"):
                os.makedirs(str(root / d), exist_ok=True)
            h, w = 48, 64
            cut = 12 + 3 * n
            lab = np.zeros((h, w), np.uint8)
            lab[cut:] = 1 + (np.arange(w) // 7 % 10)[None, :]       # classes 1..10
            lab[cut:cut + 2] = 11                                      # void
            img = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
            name = "{}_{:06d}".format(seq, 30 * i)
            cv2.imwrite(str(root / split / (name + ".jpg")), img)
            cv2.imwrite(str(root / (split + "annot") / (name + ".png")), lab)
            n += 1
    return root


def _camvid_label(camvid, stem):
    for d in ("trainannot", "valannot", "testannot"):
        p = os.path.join(str(camvid), d, stem + ".png")
        if os.path.exists(p):
            return cv2.imread(p, cv2.IMREAD_UNCHANGED)
    raise AssertionError(stem)


def _check_split(ds, camvid, sequences):
    assert ds.names == ["sky", "ground"]
    assert [tuple(c) for c in ds.colors] == [(70, 130, 180), (107, 142, 35)]
    assert ds.ignore_index == 255
    stems = [os.path.splitext(os.path.basename(img))[0] for img, _ in ds.items]
    assert sorted(set(s.split("_")[0] for s in stems)) == sorted(sequences)
    for i, stem in enumerate(stems):
        want = _camvid_label(camvid, stem)
        image, label = ds[i]
        assert image.shape[:2] == label.shape == want.shape
        assert (label[want == 0] == 0).all()                            # sky
        assert (label[(want >= 1) & (want <= 10)] == 1).all()           # ground
        assert (label[want == 11] == 255).all()                         # void stays void
    return stems


def test_builder_writes_digits_layout_the_reader_loads(fake_camvid, tmp_path):
    out = tmp_path / "aerial"
    counts = aerial.build(fake_camvid, out, ["BBB002"], progress=False)
    assert counts == {"train": 5, "val": 2}
    assert sorted(os.listdir(str(out))) == ["SOURCE.txt", "fpv-labels.txt",
                                            "fpv-training-colors.txt", "train", "val"]
    assert (out / "fpv-labels.txt").read_text() == "sky\nground\n"
    assert (out / "fpv-training-colors.txt").read_text() == "70 130 180\n107 142 35\n"
    # RGB label PNGs (what DIGITS' "colour map from text file" expects), images copied as-is
    lab = cv2.imread(str(out / "val" / "labels" / "BBB002_000000.png"), cv2.IMREAD_UNCHANGED)
    assert lab.ndim == 3 and lab.dtype == np.uint8
    src = fake_camvid / "train" / "BBB002_000000.jpg"
    assert (out / "val" / "images" / "BBB002_000000.jpg").read_bytes() == src.read_bytes()
    train = open_dataset(str(out), "digits", "train")
    val = open_dataset(str(out), "digits", "val")
    assert len(_check_split(train, fake_camvid, ["AAA001", "CCC003"])) == 5
    assert len(_check_split(val, fake_camvid, ["BBB002"])) == 2
    assert not os.path.exists(str(out) + ".part")


def test_builder_without_holdout_writes_one_folder(fake_camvid, tmp_path):
    out = tmp_path / "flat"
    assert aerial.main(["build", str(fake_camvid), str(out), "--val-sequence", "none", "-q"]) == 0
    assert sorted(os.listdir(str(out / "images"))) == sorted(
        os.listdir(str(fake_camvid / "train")) + os.listdir(str(fake_camvid / "val")))
    ds = open_dataset(str(out), "digits", "all")
    _check_split(ds, fake_camvid, list(SEQS))


def test_builder_bad_input_is_one_line(fake_camvid, tmp_path, capsys):
    out = tmp_path / "x"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert aerial.main(["build", str(fake_camvid), str(out), "--val-sequence", "AAA001", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not empty" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(JetsegError) as e:
        aerial.build(fake_camvid, tmp_path / "y", ["ZZZ999"], progress=False)
    assert "AAA001, BBB002, CCC003" in str(e.value)
    with pytest.raises(JetsegError, match="no training frames"):
        aerial.build(fake_camvid, tmp_path / "y", list(SEQS), progress=False)
    with pytest.raises(JetsegError, match="no CamVid split"):
        aerial.build(tmp_path, tmp_path / "y", progress=False)
    # --overwrite replaces the old folder once the new one is complete
    aerial.build(fake_camvid, out, ["AAA001"], overwrite=True, progress=False)
    assert sorted(os.listdir(str(out / "val" / "images"))) == [
        "AAA001_000000.jpg", "AAA001_000030.jpg", "AAA001_000060.jpg"]


def test_interrupted_build_leaves_nothing_that_looks_complete(fake_camvid, tmp_path):
    broken = tmp_path / "camvid"
    import shutil
    shutil.copytree(str(fake_camvid), str(broken))
    (broken / "trainannot" / "BBB002_000030.png").write_bytes(b"not a png")
    out = tmp_path / "aerial"
    with pytest.raises(JetsegError, match="not a readable label"):
        aerial.build(broken, out, ["AAA001"], progress=False)
    assert not os.path.exists(str(out)) and not os.path.exists(str(out) + ".part")


def test_roll_rotates_frame_and_label_together(fake_camvid, tmp_path):
    out = tmp_path / "rolled"
    aerial.build(fake_camvid, out, ["BBB002"], roll=30, progress=False)
    assert "[-30, 30] degrees" in (out / "SOURCE.txt").read_text()
    val = open_dataset(str(out), "digits", "val")
    angles = []
    for i, (img, _) in enumerate(val.items):
        stem = os.path.splitext(os.path.basename(img))[0]
        deg = aerial.roll_of(stem, 30)
        assert -30 <= deg <= 30 and deg == aerial.roll_of(stem, 30)
        angles.append(deg)
        want = _camvid_label(fake_camvid, stem)
        src = cv2.imread(str(fake_camvid / "train" / (stem + ".jpg")))
        image, ids = aerial.roll_frame(src, want, deg)
        label = val[i][1]
        assert ((label == 0) == (ids == 0)).all() and ((label == 255) == (ids == 11)).all()
        assert (ids[0, 0] == 11) and (ids[-1, -1] == 11)          # corners left the frame
        # the sky/ground boundary is no longer level: rows hold both classes
        rows = [(label[r] == 0).any() and (label[r] == 1).any() for r in range(label.shape[0])]
        assert sum(rows) > 3
        assert np.abs(val[i][0].astype(int) - image.astype(int)).mean() < 8     # JPEG q95
    assert len(set(angles)) == len(angles)
    with pytest.raises(SystemExit):
        aerial.main(["build", str(fake_camvid), str(tmp_path / "z"), "--roll", "x"])
    assert aerial.main(["build", str(fake_camvid), str(tmp_path / "z"), "--roll", "200",
                        "-q"]) == 2


def test_fcn_alexnet_trains_one_epoch_on_it(fake_camvid, tmp_path):
    torch = pytest.importorskip("torch")
    from jetseg_export.train import main as train_main
    data = tmp_path / "aerial"
    aerial.build(fake_camvid, data, ["BBB002"], progress=False)
    out = tmp_path / "run"
    assert train_main(["--arch", "fcn-alexnet", "--format", "digits", "--dataset", str(data),
                       "--input-size", "64x48", "--epochs", "1", "--batch-size", "5",
                       "--workers", "0", "--threads", "1", "--quiet", "-o", str(out)]) == 0
    ck = torch.load(str(out / "best.pth"), weights_only=True)
    assert ck["arch"] == "fcn-alexnet" and ck["classes"] == ["sky", "ground"]
    assert ck["colors"] == [[70, 130, 180], [107, 142, 35]] and ck["input_size"] == [64, 48]
    assert ck["model"]["score_fr.weight"].shape[0] == 2
    assert 0 <= ck["miou"] <= 1


def test_horizon_pictures_draw_the_fitted_line(tmp_path, capsys):
    """A banked synthetic scene (blue sky above a tilted line, green ground below) through
    the torch-free demo model: the picture is the overlay with the line drawn where the
    returned Horizon says it is."""
    from tests.helpers.common import ROOT
    model = ROOT / "engines" / "camvid-demo.onnx"
    h, w = 360, 480
    y, x = np.mgrid[0:h, 0:w]
    sky = y < 200 - 0.4 * (x - w / 2)
    frame = np.where(sky[..., None], np.uint8([200, 150, 110]), np.uint8([40, 110, 60]))
    frame = frame.astype(np.uint8)
    cv2.imwrite(str(tmp_path / "banked.png"), frame)
    assert aerial.main(["horizon", str(model), str(tmp_path / "banked.png"), "-o",
                        str(tmp_path / "out"), "-q"]) == 0
    assert "banked.png: roll " in capsys.readouterr().out
    pic = cv2.imread(str(tmp_path / "out" / "banked.horizon.png"))
    assert pic.shape == frame.shape
    (_, hz), = aerial.horizon_pictures(model, [str(tmp_path / "banked.png")],
                                       str(tmp_path / "out"))
    assert hz.p0 is not None and hz.confidence > 0
    for t in (0.3, 0.5, 0.7):           # red (BGR 0,0,255) along the fitted line
        px, py = (int(round(a + t * (b - a))) for a, b in zip(hz.p0, hz.p1))
        assert tuple(pic[py, px]) == (0, 0, 255)
    assert aerial.main(["horizon", str(model), str(tmp_path / "banked.png"), "-o",
                        str(tmp_path / "small"), "--width", "240", "--ext", "jpg", "-q"]) == 0
    assert cv2.imread(str(tmp_path / "small" / "banked.horizon.jpg")).shape == (180, 240, 3)
    assert aerial.main(["horizon", str(model), str(tmp_path / "banked.png"), "-o",
                        str(tmp_path / "out"), "--sky-classes", "Nope", "-q"]) == 2


@pytest.mark.skipif(not CAMVID.is_dir(), reason="needs ../shared/datasets/camvid (CamVid, "
                                                "SegNet tutorial layout): not present here")
def test_builder_on_real_camvid_holds_out_a_whole_sequence(tmp_path):
    out = tmp_path / "aerial"
    counts = aerial.build(CAMVID, out, ["0006R0"], progress=False)
    val = open_dataset(str(out), "digits", "val")
    train = open_dataset(str(out), "digits", "train")
    assert counts == {"train": len(train), "val": len(val)} and len(val) > 0
    seqs = set(aerial.sequence_of(p) for p, _ in val.items)
    assert seqs == {"0006R0"}
    assert "0006R0" not in set(aerial.sequence_of(p) for p, _ in train.items)
    # one real frame, pixel by pixel against CamVid's own label
    label = val[0][1]
    stem = os.path.splitext(os.path.basename(val.items[0][0]))[0]
    want = _camvid_label(CAMVID, stem)
    assert ((label == 0) == (want == 0)).all()
    assert ((label == 255) == (want == 11)).all()
    assert (want == 0).any() and ((want > 0) & (want < 11)).any()
