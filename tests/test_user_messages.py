"""What a user reads when something is wrong (issue 18, items 7, 8, 11, 13): a label or colour
count that does not match the model is an error unless asked for, no message shows a Python
``None``, errors name the Python argument from Python and the flag from the command line,
and every ``jetseg export`` option says what it does and its default."""
import argparse

import cv2
import onnx
import pytest

from tests.helpers.common import COLORS5, NAMES5, rng_frame, run_cli
from jetseg import JetsegError, Segmenter
from jetseg.errors import command_line_names, option
from jetseg_export.compose import compose
from tests.helpers.tinymodels import TinyNet


@pytest.fixture
def files(tmp_path):
    """(a 5-class model with metadata and a scores output, an image, a folder for outputs)."""
    path = tmp_path / "net.onnx"
    onnx.save(compose(TinyNet(num_classes=5, width=32, height=24).onnx(), NAMES5, COLORS5,
                      scores=True), str(path))
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), rng_frame(32, 24))
    return str(path), img, tmp_path


def _one_line(r):
    """The one stderr line of a user-fixable error (exit 2, no traceback)."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("jetseg: error: ") and "(fix: " in lines[0], lines[0]
    return lines[0]


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


# ---- item 7: a --labels / --colors count that is not the model's is an error ---------------
def test_label_count_mismatch_is_one_line_and_exit_2(files):
    model, img, tmp = files
    labels = _write(tmp / "classes.txt", NAMES5[:3])
    line = _one_line(run_cli("segment", "--model", model, "--labels", labels, img, tmp / "o.png"))
    assert "{} lists 3 classes but the model outputs 5 classes".format(labels) in line
    assert "--labels-mismatch-ok" in line and "classes.txt the model was trained with" in line
    assert not (tmp / "o.png").exists()
    many = _write(tmp / "many.txt", NAMES5 + ["extra"])
    line = _one_line(run_cli("segment", "--model", model, "--labels", many, img))
    assert "{} lists 6 classes but the model outputs 5 classes".format(many) in line


def test_colour_count_mismatch_is_one_line_and_exit_2(files):
    model, img, tmp = files
    colors = _write(tmp / "colors.txt", ["1 2 3", "4 5 6"])
    line = _one_line(run_cli("segment", "--model", model, "--colors", colors, img))
    assert "{} lists 2 colours but the model outputs 5 classes".format(colors) in line
    assert "colors.txt the model was trained with" in line and "--labels-mismatch-ok" in line


def test_labels_mismatch_ok_fills_and_drops(files):
    model, img, tmp = files
    labels = _write(tmp / "classes.txt", ["a", "b", "c"])
    colors = _write(tmp / "colors.txt", ["1 2 3"] * 7)
    out = tmp / "o.png"
    r = run_cli("segment", "--model", model, "--labels", labels, "--colors", colors,
                "--labels-mismatch-ok", img, out, "--legend", tmp / "legend.png")
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(out)).shape == (24, 32, 3)
    assert "lists 3 classes but the model outputs 5; the rest are named 'class #N'" in r.stderr
    assert "lists 7 colours but the model outputs 5 classes; the last 2 are not used" in r.stderr
    seg = Segmenter(model, labels=str(labels), colors=str(colors), labels_mismatch_ok=True)
    assert seg.classes == ["a", "b", "c", "class #3", "class #4"]
    assert seg.colors == [(1, 2, 3)] * 5


def test_label_count_mismatch_from_python_names_the_argument(files):
    model = files[0]
    with pytest.raises(JetsegError) as e:
        Segmenter(model, labels=["a", "b"])
    msg = str(e.value)
    assert "labels lists 2 classes but the model outputs 5 classes" in msg
    assert "labels_mismatch_ok=True" in msg and "--" not in msg
    with pytest.raises(JetsegError, match="colors lists 6 colours but the model outputs 5"):
        Segmenter(model, colors=COLORS5 + [(0, 0, 0)])
    assert Segmenter(model, labels=NAMES5[::-1], colors=COLORS5).classes == NAMES5[::-1]


def test_export_refuses_a_label_count_that_is_not_num_classes(tmp_path):
    labels = _write(tmp_path / "classes.txt", ["a", "b", "c"])
    line = _one_line(run_cli("export", "--arch", "unet", "--num-classes", "5", "--labels",
                             labels, "-o", tmp_path / "m.onnx"))
    assert "{} lists 3 classes but the model outputs 5 classes".format(labels) in line
    assert "--labels-mismatch-ok" in line and not (tmp_path / "m.onnx").exists()


# ---- item 8: no Python None (or other repr) in what a user reads ---------------------------
def _argmax_only(tmp, ignore_class=None):
    path = tmp / "argmax{}.onnx".format("" if ignore_class is None else ignore_class)
    onnx.save(compose(TinyNet(num_classes=5, width=32, height=24).onnx(), NAMES5, COLORS5,
                      scores=False, ignore_class=ignore_class), str(path))
    return str(path)


def test_ignore_class_on_a_graph_without_scores_says_what_it_does(files):
    _, img, tmp = files
    model = _argmax_only(tmp)
    line = _one_line(run_cli("segment", "--model", model, "--ignore-class", "sky", img))
    assert "graph does its own argmax over every class and has no scores output, so " \
           "--ignore-class sky cannot apply" in line
    assert "re-export it with --scores" in line and "None" not in line
    with pytest.raises(JetsegError) as e:
        Segmenter(_argmax_only(tmp, ignore_class=0), ignore_class="road")
    msg = str(e.value)
    assert "argmax ignoring class 0 (sky)" in msg and "ignore_class='road' cannot" in msg
    assert "None" not in msg


def test_model_descriptions_show_no_none(tmp_path):
    dyn = TinyNet(num_classes=4, down=2, dynamic=True).save(tmp_path / "dyn.onnx")
    seg = Segmenter(dyn)
    assert "None" not in repr(seg) and "of any size" in repr(seg)
    assert "None" not in seg.info.describe() and seg.info.describe().startswith(
        "no class names, input input_0 of any size")
    for backend in ("onnxruntime", "openvino"):
        pytest.importorskip(backend)
        r = run_cli("info", dyn, "--backend", backend)
        assert r.returncode == 0, r.stderr
        assert "None" not in r.stdout and "inputs:    input_0[1, 3, " in r.stdout, r.stdout


# ---- item 11: Python errors name the argument, the command line the flag ------------------
def test_process_none_says_what_imread_does(tmp_path, files):
    seg = Segmenter(files[0])
    frame = cv2.imread(str(tmp_path / "missing.jpg"))       # what a typo in a path gives
    with pytest.raises(JetsegError) as e:
        seg.process(frame)
    msg = str(e.value)
    assert msg.startswith("frame is None, not an image; cv2.imread returns None for a path "
                          "it cannot read")
    assert "HxWx3 uint8 numpy array" in msg and "NoneType" not in msg


def test_option_names_the_argument_or_the_flag():
    assert option("input_blob") == "input_blob"
    assert option("input_blob", "NAME") == "input_blob='NAME'"
    assert option("labels_mismatch_ok", True) == "labels_mismatch_ok=True"
    with command_line_names():
        assert option("input_blob") == "--input-blob"
        assert option("input_blob", "NAME") == "--input-blob NAME"
        assert option("labels_mismatch_ok", True) == "--labels-mismatch-ok"
        assert option("width", 640, flag="--input-width") == "--input-width 640"
    assert option("mean", "1,2") == "mean='1,2'"            # back to Python after the block


@pytest.mark.parametrize("kwargs, flags, python, cli", [
    ({"model": "missing.onnx"}, [], "check the path given as model;",
     "check the path given as --model;"),
    ({"input_blob": "nope"}, ["--input-blob", "nope"], "pass input_blob with one of those",
     "pass --input-blob with one of those"),
    ({"output_blob": "nope"}, ["--output-blob", "nope"], "pass output_blob with one of those",
     "pass --output-blob with one of those"),
    ({"mean": "0.5,0.5"}, ["--mean", "0.5,0.5"], "mean='0.5,0.5' needs three numbers",
     "--mean 0.5,0.5 needs three numbers"),
    ({"input_size": "16x16"}, ["--input-size", "16x16"],
     "input_size='16x16' does not match the model's fixed input 32x24",
     "--input-size 16x16 does not match the model's fixed input 32x24"),
    ({"alpha": 300}, ["--alpha", "300"], "alpha=300 is outside 0-255",
     "--alpha 300 is outside 0-255"),
    ({"ignore_class": "skyy"}, ["--ignore-class", "skyy"],
     "ignore_class 'skyy' is not a class of this model",
     "--ignore-class 'skyy' is not a class of this model"),
    ({"backend": "onnxruntime", "model": "m.engine"}, ["--backend", "onnxruntime"],
     "use backend='tensorrt' (or auto)", "use --backend tensorrt (or auto)"),
])
def test_errors_name_the_python_argument_or_the_flag(files, kwargs, flags, python, cli):
    model, img, tmp = files
    kwargs = dict(kwargs)
    if kwargs.get("model") == "m.engine":
        (tmp / "m.engine").write_bytes(b"not really an engine")
    model = str(tmp / kwargs.pop("model")) if "model" in kwargs else model
    with pytest.raises(JetsegError) as e:
        Segmenter(model, **kwargs)
    assert python in str(e.value) and " --" not in str(e.value), str(e.value)
    line = _one_line(run_cli("segment", "--model", model, *(flags + [img])))
    assert cli in line, line


# ---- item 13: every jetseg export option says what it does and its default ----------------
def test_every_export_option_has_help_and_names_its_default():
    from jetseg_export.cli import build_parser
    p = build_parser()
    for a in p._actions:
        assert a.help, "jetseg export {}: no help text".format(a.option_strings or a.dest)
        if a.nargs != 0 and a.default not in (None, False, argparse.SUPPRESS):
            assert "default" in a.help and str(a.default) in a.help, \
                "jetseg export {}: default {!r} not shown".format(a.option_strings, a.default)
    r = run_cli("export", "--help")
    assert r.returncode == 0 and "percentile (default" in r.stdout and "fp32 (default)" in r.stdout
