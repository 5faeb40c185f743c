"""Frame graphs at run time: which model a frame of a given size goes through.

A frame graph (``jetseg export --frame-size WxH``) takes the camera frame itself and gives the
class map and overlay at the frame's size, so no per-frame resize, argmax, palette or blend
runs on the CPU. Its metadata says so (ModelInfo.frame). A net-size model (e.g. 320x240)
runs any frame size through the CPU path instead: resize down, then upsample and blend.

The Segmenter picks, once per frame size:
- the model is a frame graph: frames of its size go straight in; another size is a
  JetsegError naming the size it takes and how to get one for this size;
- the model runs at the net's size: a frame graph for this frame size beside it
  (``camvid.onnx`` -> ``camvid.1280x720.onnx``; ``camvid.fp16.engine`` ->
  ``camvid.1280x720.fp16.engine`` too) is used when it exists; otherwise one log line says
  the frames take the CPU path and how to make a frame graph.
"""
import os

from jetseg.errors import JetsegError, option

PRECISION_TAGS = ("fp32", "fp16", "int8")


def size_tag(size):
    return "{}x{}".format(size[0], size[1])


def sibling_names(path, size):
    """Where a frame graph for frames of ``size`` made from ``path`` would be."""
    folder, base = os.path.split(str(path))
    stem, ext = os.path.splitext(base)
    names = ["{}.{}{}".format(stem, size_tag(size), ext)]
    head, dot, tag = stem.rpartition(".")
    if dot and tag in PRECISION_TAGS:         # jetseg build names engines model.<prec>.engine
        names.append("{}.{}.{}{}".format(head, size_tag(size), tag, ext))
    return [os.path.join(folder, n) for n in names]


def find_frame_graph(path, size):
    """The first existing sibling frame graph for ``size``, or None."""
    for candidate in sibling_names(path, size):
        if os.path.isfile(candidate):
            return candidate
    return None


def export_hint(path, size):
    """The command that makes a frame graph for ``size`` from the model at ``path``."""
    stem, ext = os.path.splitext(str(path))
    source = path if ext.lower() == ".onnx" else stem.rsplit(".", 1)[0] + ".onnx"
    return "jetseg export --from {} --frame-size {} -o {}".format(
        source, size_tag(size), sibling_names(source, size)[0])


def wrong_size(info, path, size):
    """The error for a frame of ``size`` given to a frame graph made for another size."""
    f = info.frame
    net = (f["net_width"], f["net_height"])
    return JetsegError(
        "this frame graph takes {} frames (it shrinks them to the net's {} itself); this "
        "frame is {}".format(size_tag((f["width"], f["height"])), size_tag(net),
                             size_tag(size)), path=path,
        fix="set the camera to {w}x{h} ({ow} {oh}), or make a frame graph for {s} ({cmd}), or "
            "run the net-size model, which takes any frame size (resize and overlay on the "
            "CPU)".format(w=f["width"], h=f["height"], s=size_tag(size),
                          ow=option("width", f["width"], flag="--input-width"),
                          oh=option("height", f["height"], flag="--input-height"),
                          cmd=export_hint(_source(info, path), size)))


def _source(info, path):
    """The net-size model a frame graph was made from, where its metadata names it."""
    made_from = info.extra.get("frame_of")
    return os.path.join(os.path.dirname(str(path)), made_from) if made_from else path


def cpu_path_note(path, net_size, size):
    """The one line that says frames of ``size`` take the CPU path."""
    return ("{}: {} frames take the CPU path (resized to the net's {}, class map and overlay "
            "brought back to {} on the CPU); for all of it in the graph: {}".format(
                os.path.basename(str(path)), size_tag(size), size_tag(net_size),
                size_tag(size), export_hint(path, size)))
