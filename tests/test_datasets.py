"""Dataset readers: tiny fixtures written in each real format, plus the real CamVid split."""
import json
import logging
import os
import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from jetseg import JetsegError
from jetseg.eval.datasets import ColorDecoder, detect_format, open_dataset
from jetseg.eval.datasets.classfiles import png_palette
from jetseg.eval.datasets.coco import rle_decode, rle_string_to_counts

# pycocotools 2.0.x on numpy 2 warns about __array__(copy=...) inside its own code
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CAMVID = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "camvid"
H, W = 12, 16


def _img(seed, h=H, w=W):
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)


def _write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), arr)
    return path


def _rgb_mask(ids, colors):
    """Class-id map -> BGR image coloured with (r, g, b) ``colors``."""
    lut = np.array([c[::-1] for c in colors], np.uint8)
    return lut[ids]


def _ids(seed, n, h=H, w=W):
    return np.random.RandomState(seed).randint(0, n, (h, w)).astype(np.uint8)


def write_indexed_png(path, ids, palette):
    """A paletted (colour type 3) PNG, written by hand: OpenCV cannot write one."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    h, w = ids.shape
    raw = b"".join(b"\x00" + ids[y].astype(np.uint8).tobytes() for y in range(h))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + chunk(b"PLTE", bytes(bytearray(v for c in palette for v in c)))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---- camvid ------------------------------------------------------------------------------
@pytest.fixture
def camvid_dir(tmp_path):
    root = tmp_path / "camvid"
    for split, n in (("train", 3), ("val", 2)):
        for k in range(n):
            name = "0001TP_{:06d}".format(k)
            _write(root / split / (name + ".jpg"), _img(k))
            _write(root / (split + "annot") / (name + ".png"), _ids(k, 12))   # 11 = void
    return root


def test_camvid_reads_images_labels_and_void(camvid_dir):
    ds = open_dataset(camvid_dir, "camvid", "train")
    assert len(ds) == 3 and ds.split == "train" and ds.num_classes == 11
    assert ds.names[0] == "Sky" and ds.names[-1] == "Bicyclist"
    assert ds.colors[3] == (128, 64, 128) and ds.ignore_index == 11
    image, label = ds[1]
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert label.shape == (H, W) and label.dtype == np.uint8
    assert np.array_equal(label, _ids(1, 12))
    assert ds.paths(1)[0].endswith("train/0001TP_000001.jpg")
    assert ds.paths(-1)[1].endswith("trainannot/0001TP_000002.png")
    with pytest.raises(IndexError):
        ds[3]
    assert len(open_dataset(camvid_dir, "auto", "val")) == 2


def test_camvid_missing_split_names_folder_and_layout(camvid_dir):
    with pytest.raises(JetsegError) as e:
        open_dataset(camvid_dir, "camvid", "test")
    msg = str(e.value)
    assert "test" in msg and "testannot" in msg and "train, val" in msg and "annot/" in msg


def test_missing_dataset_folder_is_clear(tmp_path):
    with pytest.raises(JetsegError) as e:
        open_dataset(tmp_path / "nope", "camvid", "val")
    assert "nope" in str(e.value) and "not found" in str(e.value)
    with pytest.raises(JetsegError, match="unknown dataset format"):
        open_dataset(tmp_path, "pascal", "val")
    with pytest.raises(JetsegError, match="cannot tell the dataset format"):
        open_dataset(tmp_path, "auto", "val")


def test_image_without_label_errors_or_is_skipped(camvid_dir):
    _write(camvid_dir / "val" / "0001TP_000009.jpg", _img(9))
    _write(camvid_dir / "val" / "0001TP_000010.jpg", _img(10))
    with pytest.raises(JetsegError) as e:
        open_dataset(camvid_dir, "camvid", "val")
    assert "2 of 4 images have no label" in str(e.value)
    assert "0001TP_000009.jpg" in str(e.value) and "--skip-bad" in str(e.value)
    ds = open_dataset(camvid_dir, "camvid", "val", skip_bad=True)
    assert len(ds) == 2 and len(ds.skipped) == 2


def test_bad_label_values_and_sizes_name_the_file(camvid_dir):
    bad = np.zeros((H, W), np.uint8)
    bad[0, 0] = 40
    _write(camvid_dir / "valannot" / "0001TP_000000.png", bad)
    _write(camvid_dir / "valannot" / "0001TP_000001.png", np.zeros((H + 1, W), np.uint8))
    ds = open_dataset(camvid_dir, "camvid", "val")
    with pytest.raises(JetsegError) as e:
        ds[0]
    assert "0001TP_000000.png" in str(e.value) and "40" in str(e.value)
    with pytest.raises(JetsegError) as e:
        ds[1]
    assert "0001TP_000001.png" in str(e.value) and "16x13" in str(e.value)
    with pytest.raises(JetsegError) as e:
        ds.validate()
    assert "2 of 2 samples are bad" in str(e.value) and "0001TP_000000.png" in str(e.value)
    train = open_dataset(camvid_dir, "camvid", "train", skip_bad=True)
    _write(camvid_dir / "trainannot" / "0001TP_000002.png", bad)
    assert train.validate() == 1 and len(train) == 2 and len(train.skipped) == 1


def test_empty_image_folder_is_an_error(tmp_path):
    (tmp_path / "val").mkdir()
    (tmp_path / "valannot").mkdir()
    with pytest.raises(JetsegError, match="no images found"):
        open_dataset(tmp_path, "camvid", "val")


# ---- colour decoding ---------------------------------------------------------------------
def test_color_decoder_is_exact_and_warns_once():
    colors = [(0, 0, 0), (255, 0, 255), (10, 20, 30), (128, 64, 128)]
    ids = _ids(3, 4, 50, 60)
    bgr = _rgb_mask(ids, colors)
    dec = ColorDecoder(colors, ignore_index=255, source="colors.txt")
    assert np.array_equal(dec(bgr, "a.png"), ids)
    bgr[0, :5] = (1, 2, 3)
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("jetseg")      # its own handler: the CLI may stop propagation
    logger.addHandler(handler)
    try:
        out = dec(bgr, "b.png")
        dec(bgr, "c.png")
    finally:
        logger.removeHandler(handler)
    assert (out[0, :5] == 255).all() and np.array_equal(out[1:], ids[1:])
    warnings = [r for r in records if "not in colors.txt" in r.getMessage()]
    assert len(warnings) == 1 and "b.png" in warnings[0].getMessage()
    assert "(3, 2, 1)" in warnings[0].getMessage()           # reported as (r, g, b)
    with pytest.raises(JetsegError, match="not in"):
        ColorDecoder(colors, strict=True)(bgr, "d.png")
    with pytest.raises(JetsegError, match="two classes"):
        ColorDecoder([(1, 1, 1), (1, 1, 1)])


# ---- digits (NVIDIA aerial drone FPV layout) ---------------------------------------------
FPV_COLORS = [(0, 0, 0), (0, 128, 255), (120, 200, 60)]


@pytest.fixture
def fpv_dir(tmp_path):
    root = tmp_path / "FPV" / "SFWA"
    for k in range(10):
        name = "frame{:04d}".format(k)
        _write(root / "720p" / "images" / (name + ".jpg"), _img(k))
        _write(root / "720p" / "labels" / (name + ".png"), _rgb_mask(_ids(k, 3), FPV_COLORS))
    (root / "fpv-labels.txt").write_text("void\nsky\nground\n")
    (root / "fpv-training-colors.txt").write_text(
        "".join("{} {} {}\n".format(*c) for c in FPV_COLORS))
    (root / "fpv-deploy-colors.txt").write_text("0 0 0 0\n0 0 255 100\n0 255 0 100\n")
    return root


def test_digits_fpv_layout_with_colour_file(fpv_dir):
    every = open_dataset(fpv_dir, "digits", "all")
    assert len(every) == 10 and every.names == ["void", "sky", "ground"]
    assert every.colors == FPV_COLORS                       # training colours, not deploy
    assert every.colors_file.endswith("fpv-training-colors.txt")
    for i in range(len(every)):
        k = int(Path(every.paths(i)[0]).stem[-4:])
        assert np.array_equal(every[i][1], _ids(k, 3))
    train = open_dataset(fpv_dir, "digits", "train", val_percent=30)
    val = open_dataset(fpv_dir, "digits", "val", val_percent=30)
    t, v = set(train.paths(i)[0] for i in range(len(train))), \
        set(val.paths(i)[0] for i in range(len(val)))
    assert not t & v and len(t | v) == 10 and v
    assert detect_format(fpv_dir) == "digits"
    assert len(open_dataset(fpv_dir / "720p", "digits", "all")) == 10    # txt one level up


def test_digits_grey_and_paletted_labels(tmp_path):
    root = tmp_path / "d"
    pal = [(10, 10, 10), (200, 0, 0), (0, 200, 0)] + [(0, 0, 0)] * 253
    for k in range(3):
        _write(root / "train" / "images" / "a{}.png".format(k), _img(k))
        write_indexed_png(root / "train" / "labels" / "a{}.png".format(k), _ids(k, 3), pal)
        _write(root / "val" / "images" / "b{}.png".format(k), _img(k))
        _write(root / "val" / "labels" / "b{}.png".format(k), _ids(k + 5, 3))
    (root / "classes.txt").write_text("a\nb\nc\n")
    assert png_palette(root / "train" / "labels" / "a0.png")[:3] == pal[:3]
    train = open_dataset(root, "digits", "train")
    assert len(train) == 3 and train.colors == pal[:3]
    assert np.array_equal(train[2][1], _ids(2, 3))
    val = open_dataset(root, "digits", "val")
    assert np.array_equal(val[1][1], _ids(6, 3))


def test_digits_rgb_labels_without_colour_file_is_clear(tmp_path):
    root = tmp_path / "d"
    _write(root / "images" / "x.png", _img(0))
    _write(root / "labels" / "x.png", _rgb_mask(_ids(0, 2), [(1, 2, 3), (4, 5, 6)]))
    (root / "labels.txt").write_text("a\nb\n")
    ds = open_dataset(root, "digits", "all")
    with pytest.raises(JetsegError, match="colors"):
        ds[0]


# ---- KITTI road --------------------------------------------------------------------------
def test_kitti_road_devkit_encoding(tmp_path):
    root = tmp_path / "data_road"
    expect = {}
    for k, cat in enumerate(("um", "umm", "uu", "um", "uu")):
        name = "{}_{:06d}".format(cat, k)
        ids = _ids(k, 3)                          # 0 not road, 1 road, 2 -> invalid
        gt = _rgb_mask(ids, [(255, 0, 0), (255, 0, 255), (0, 0, 0)])
        _write(root / "training" / "image_2" / (name + ".png"), _img(k))
        _write(root / "training" / "gt_image_2" / "{}_road_{:06d}.png".format(cat, k), gt)
        if cat == "um":                           # ego-lane masks are not the road labels
            _write(root / "training" / "gt_image_2" / "{}_lane_{:06d}.png".format(cat, k),
                   np.zeros_like(gt))
        expect[name] = np.where(ids == 2, 255, ids)
    ds = open_dataset(root, "auto", "all")
    assert ds.format == "kitti-road" and len(ds) == 5 and ds.names == ["not road", "road"]
    for i in range(len(ds)):
        assert np.array_equal(ds[i][1], expect[Path(ds.paths(i)[0]).stem])
    assert len(open_dataset(root / "training", "kitti-road", "all")) == 5
    n_train = len(open_dataset(root, "kitti-road", "train"))
    assert n_train + len(open_dataset(root, "kitti-road", "val")) == 5
    with pytest.raises(JetsegError, match="split 'test'"):
        open_dataset(root, "kitti-road", "test")


# ---- Cityscapes --------------------------------------------------------------------------
def test_cityscapes_label_ids_to_train_ids(tmp_path):
    ids = np.array([[7, 8, 26, 33], [0, 1, 255, 24], [31, 6, 11, 23]], np.uint8)
    want = np.array([[0, 1, 13, 18], [255, 255, 255, 11], [16, 255, 2, 10]], np.uint8)
    for city, k in (("frankfurt", 0), ("lindau", 1)):
        stem = "{}_000000_{:06d}".format(city, k)
        _write(tmp_path / "leftImg8bit" / "val" / city / (stem + "_leftImg8bit.png"),
               _img(k, 3, 4))
        _write(tmp_path / "gtFine" / "val" / city / (stem + "_gtFine_labelIds.png"), ids)
        _write(tmp_path / "gtFine" / "val" / city / (stem + "_gtFine_color.png"), _img(k, 3, 4))
    ds = open_dataset(tmp_path, "auto", "val")
    assert ds.format == "cityscapes" and len(ds) == 2 and ds.num_classes == 19
    assert ds.names[13] == "car" and ds.colors[0] == (128, 64, 128)
    assert np.array_equal(ds[1][1], want)
    with pytest.raises(JetsegError) as e:
        open_dataset(tmp_path, "cityscapes", "train")
    assert "leftImg8bit" in str(e.value) and "gtFine" in str(e.value)


# ---- Semantic Drone Dataset --------------------------------------------------------------
DRONE_TABLE = [("unlabeled", (0, 0, 0)), ("paved-area", (128, 64, 128)),
               ("grass", (0, 102, 0)), ("conflicting", (255, 0, 0))]


def test_semantic_drone_kaggle_layout(tmp_path):
    """class_dict_seg.csv at the top, images two folders down, masks in a nested folder."""
    (tmp_path / "class_dict_seg.csv").write_text(
        "name, r, g, b\n" + "".join("{}, {}, {}, {}\n".format(n, *c) for n, c in DRONE_TABLE))
    imgs = tmp_path / "dataset" / "semantic_drone_dataset" / "original_images"
    masks = tmp_path / "RGB_color_image_masks" / "RGB_color_image_masks"
    grey = tmp_path / "dataset" / "semantic_drone_dataset" / "label_images_semantic"
    for k in range(6):
        _write(imgs / "{:03d}.jpg".format(k), _img(k))
        _write(masks / "{:03d}.png".format(k), _rgb_mask(_ids(k, 4), [c for _, c in DRONE_TABLE]))
        _write(grey / "{:03d}.png".format(k), _ids(k, 4))
    ds = open_dataset(tmp_path, "auto", "all")
    assert ds.format == "drone" and len(ds) == 6
    assert ds.paths(0)[1].endswith("RGB_color_image_masks/RGB_color_image_masks/000.png")
    assert ds.names == ["paved-area", "grass"] and ds.colors == [(128, 64, 128), (0, 102, 0)]
    ids = _ids(2, 4)
    want = np.array([255, 0, 1, 255], np.uint8)[ids]
    assert np.array_equal(ds[2][1], want)
    keep = open_dataset(tmp_path, "drone", "all", void=())
    assert keep.names[0] == "unlabeled" and np.array_equal(keep[2][1], ids)
    import shutil
    shutil.rmtree(str(tmp_path / "RGB_color_image_masks"))         # grey ids only
    only_grey = open_dataset(tmp_path, "drone", "all")
    assert only_grey.paths(2)[1].endswith("label_images_semantic/002.png")
    assert np.array_equal(only_grey[2][1], want)


def test_semantic_drone_original_layout(tmp_path):
    sem = tmp_path / "semantic_drone_dataset" / "training_set" / "gt" / "semantic"
    sem.mkdir(parents=True)
    (sem / "class_dict.csv").write_text(
        "name,r,g,b\n" + "".join("{},{},{},{}\n".format(n, *c) for n, c in DRONE_TABLE))
    for k in range(3):
        _write(tmp_path / "semantic_drone_dataset" / "training_set" / "images" /
               "{:03d}.jpg".format(k), _img(k))
        _write(sem / "label_images" / "{:03d}.png".format(k),
               _rgb_mask(_ids(k, 4), [c for _, c in DRONE_TABLE]))
    ds = open_dataset(tmp_path, "drone", "all")
    assert len(ds) == 3 and ds.class_table.endswith("class_dict.csv")
    with pytest.raises(JetsegError) as e:
        open_dataset(tmp_path / "semantic_drone_dataset" / "training_set" / "gt", "drone")
    assert "training_set/images" in str(e.value)


# the Kaggle copy's class_dict_seg.csv, in its own form (header id,name,r,g,b; ids -1..22)
KAGGLE_DRONE_CSV = """id,name,r,g,b
-1,unlabeled,0,0,0
0,paved-area,128,64,128
1,dirt,130,76,0
2,grass,0,102,0
3,gravel,112,103,87
4,water,28,42,168
5,rocks,48,41,30
6,pool,0,50,89
7,vegetation,107,142,35
8,roof,70,70,70
9,wall,102,102,156
10,window,254,228,12
11,door,254,148,12
12,fence,190,153,153
13,fence-pole,153,153,153
14,person,255,22,96
15,dog,102,51,0
16,car,9,143,150
17,bicycle,119,11,32
18,tree,51,51,0
19,bald-tree,190,250,190
20,ar-marker,112,150,146
21,obstacle,2,135,115
22,conflicting,255,0,0
"""


def test_semantic_drone_kaggle_id_table_is_read_by_its_header(tmp_path):
    """22 classes named as in the table, void rows (-1 unlabeled, 22 conflicting) ignored,
    and every RGB or grey label gives the class its table id."""
    (tmp_path / "class_dict_seg.csv").write_text(KAGGLE_DRONE_CSV)
    rows = [l.split(",") for l in KAGGLE_DRONE_CSV.splitlines()[1:]]
    colors = [tuple(int(v) for v in r[2:]) for r in rows]
    base = tmp_path / "dataset" / "semantic_drone_dataset"
    ids = np.arange(24 * 4).reshape(8, 12) % 24               # every row of the table
    _write(base / "original_images" / "000.jpg", _img(0, 8, 12))
    _write(tmp_path / "RGB_color_image_masks" / "RGB_color_image_masks" / "000.png",
           _rgb_mask(ids, colors))
    _write(base / "label_images_semantic" / "000.png", ids.astype(np.uint8))   # row numbers
    ds = open_dataset(tmp_path, "drone", "all")
    assert ds.num_classes == 22 and ds.names == [r[1] for r in rows[1:23]]
    assert ds.names[0] == "paved-area" and ds.names[-1] == "obstacle"
    assert ds.colors[0] == (128, 64, 128) and ds.colors[21] == (2, 135, 115)
    table_id = np.array([int(r[0]) for r in rows])            # -1, 0, ..., 21, 22
    want = np.where((table_id < 0) | (table_id > 21), 255, table_id)[ids].astype(np.uint8)
    assert np.array_equal(ds[0][1], want)                     # RGB mask
    import shutil
    shutil.rmtree(str(tmp_path / "RGB_color_image_masks"))
    assert np.array_equal(open_dataset(tmp_path, "drone", "all")[0][1], want)   # grey ids
    keep = open_dataset(tmp_path, "drone", "all", void=())     # the tutorials' 24 classes
    assert keep.num_classes == 24 and keep.names[0] == "unlabeled"


def test_class_table_header_variants(tmp_path):
    from jetseg.eval.datasets.classfiles import read_class_csv
    t = tmp_path / "t.csv"
    for text, ids in (("name, r, g, b\nsky, 1, 2, 3\nroad,4,5,6\n", None),
                      ("r,g,b,name\n1,2,3,sky\n4,5,6,road\n", None),
                      ("sky,1,2,3\nroad,4,5,6\n", None),
                      ("-1,sky,1,2,3\n0,road,4,5,6\n", [-1, 0])):
        t.write_text(text)
        assert read_class_csv(t) == (["sky", "road"], [(1, 2, 3), (4, 5, 6)], ids), text
    t.write_text("id,name,r,g,b\n0,sky,1,2,3\n0,road,4,5,6\n")
    with pytest.raises(JetsegError, match="one id to two classes"):
        read_class_csv(t)
    t.write_text("id,name,r,g,b\nx,sky,1,2,3\n")
    with pytest.raises(JetsegError, match="line 2: id and colour must be integers"):
        read_class_csv(t)


# ---- COCO --------------------------------------------------------------------------------
def _coco_fixture(tmp_path, use_string_rle):
    root = tmp_path / "coco"
    h, w = 40, 50
    sq = [[5, 5, 25, 5, 25, 25, 5, 25]]                      # person square
    tri = [[30, 30, 45, 30, 45, 38]]                         # dog triangle
    car = np.zeros((h, w), np.uint8)
    car[2:10, 35:48] = 1
    counts = _rle_counts(car)
    car_seg = {"size": [h, w], "counts": counts}
    if use_string_rle:
        car_seg = {"size": [h, w], "counts": _rle_string(counts)}
    crowd = np.zeros((h, w), np.uint8)
    crowd[30:38, 2:12] = 1
    anns = [
        {"id": 1, "image_id": 7, "category_id": 1, "segmentation": sq, "area": 400, "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 18, "segmentation": tri, "area": 60,
         "iscrowd": 0},
        {"id": 3, "image_id": 7, "category_id": 3, "segmentation": car_seg, "area": 104,
         "iscrowd": 0},
        {"id": 4, "image_id": 7, "category_id": 1, "iscrowd": 1, "area": 80,
         "segmentation": {"size": [h, w], "counts": _rle_counts(crowd)}},
        {"id": 5, "image_id": 8, "category_id": 3, "segmentation": car_seg, "area": 104,
         "iscrowd": 0},
    ]
    data = {"images": [{"id": 7, "file_name": "000000000007.jpg", "height": h, "width": w},
                       {"id": 8, "file_name": "000000000008.jpg", "height": h, "width": w}],
            "annotations": anns,
            "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"},
                           {"id": 18, "name": "dog"}]}
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    for im in data["images"]:
        _write(root / "val2017" / im["file_name"], _img(im["id"], h, w))
    return root, car, crowd


def _rle_counts(mask):
    flat = mask.T.ravel()                                    # column-major, starts with 0s
    counts, cur, run = [], 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    return counts


def _rle_string(counts):
    """pycocotools' rleToString, written out for the test (LEB128-like, 5 bits a char)."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1f
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


@pytest.mark.parametrize("string_rle", [False, True])
def test_coco_polygons_rle_crowd_and_category_subset(tmp_path, string_rle):
    root, car, crowd = _coco_fixture(tmp_path, string_rle)
    ds = open_dataset(root, "auto", "val", backend="opencv")
    assert ds.format == "coco" and ds.names == ["background", "person", "car", "dog"]
    assert len(ds) == 2 and ds.paths(0)[1].endswith("instances_val2017.json")
    image, label = ds[0]
    assert image.shape == (40, 50, 3) and label.shape == (40, 50)
    assert (label[8:22, 8:22] == 1).all() and label[0, 0] == 0
    assert (label[car.astype(bool)] == 2).all()
    assert label[31, 43] == 3                                  # inside the dog triangle
    assert (label[crowd.astype(bool)] == 255).all()
    sub = open_dataset(root, "coco", "val", categories=["dog", "person"], backend="opencv")
    assert sub.names == ["background", "dog", "person"] and len(sub) == 1
    lab = sub[0][1]
    assert (lab[car.astype(bool)] == 0).all() and lab[31, 43] == 1 and lab[10, 10] == 2
    with pytest.raises(JetsegError, match="'cat' is not in the annotations"):
        open_dataset(root, "coco", "val", categories=["cat"])


def _pycocotools():
    """pycocotools.mask; in CI (the dev extra installs it) a missing one fails, not skips."""
    if os.environ.get("CI"):
        from pycocotools import mask
        return mask
    return pytest.importorskip("pycocotools.mask")


def test_pycocotools_is_in_the_extra_the_tests_get():
    import re
    setup = (Path(__file__).resolve().parents[1] / "setup.py").read_text()
    dev = re.search(r'"dev": \[([^\]]*)\]', setup).group(1)
    assert '"pycocotools' in dev, dev


def test_coco_rle_string_decoder_matches_pycocotools():
    mask_utils = _pycocotools()
    rng = np.random.RandomState(0)
    m = (rng.rand(37, 23) > 0.6).astype(np.uint8)
    enc = mask_utils.encode(np.asfortranarray(m))
    assert np.array_equal(rle_decode(enc, 37, 23), m)
    assert rle_string_to_counts(enc["counts"]) == _rle_counts(m)
    assert _rle_string(_rle_counts(m)) == enc["counts"].decode("ascii")


def test_coco_backends_agree(tmp_path):
    _pycocotools()
    root, _, _ = _coco_fixture(tmp_path, True)
    a = open_dataset(root, "coco", "val", backend="pycocotools")[0][1]
    b = open_dataset(root, "coco", "val", backend="opencv")[0][1]
    assert (a != b).mean() < 0.02           # polygon edges may differ by a pixel


def test_coco_without_pycocotools_is_clear(tmp_path, monkeypatch):
    root, car, _ = _coco_fixture(tmp_path, True)
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    with pytest.raises(JetsegError) as e:
        open_dataset(root, "coco", "val", backend="pycocotools")
    assert "pycocotools is not installed" in str(e.value) and "pip install" in str(e.value)
    ds = open_dataset(root, "coco", "val")                  # auto: falls back to OpenCV/numpy
    assert ds.mask_utils is None and (ds[1][1][car.astype(bool)] == 2).all()


def test_coco_missing_annotations_name_the_layout(tmp_path):
    (tmp_path / "annotations").mkdir()
    with pytest.raises(JetsegError) as e:
        open_dataset(tmp_path, "coco", "val")
    assert "instances_val" in str(e.value) and "val2017" in str(e.value)


# ---- the real CamVid ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_camvid():
    if not (CAMVID / "val").is_dir():
        pytest.skip("CamVid not found at {} (real-data tests read ../shared/datasets/camvid)"
                    .format(CAMVID))
    return CAMVID


def test_real_camvid_splits(real_camvid):
    train = open_dataset(real_camvid, "auto", "train")
    val = open_dataset(real_camvid, "camvid", "val")
    assert (len(train), len(val)) == (367, 101) and train.format == "camvid"
    seen = np.zeros(256, bool)
    for ds in (train, val):
        for i in range(len(ds)):
            seen[np.unique(ds.read_label(i))] = True
    assert set(np.flatnonzero(seen)) <= set(range(12)) and seen[:12].all()
    image, label = val[0]
    assert image.shape == (360, 480, 3) and label.shape == (360, 480)
