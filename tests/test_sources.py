import cv2
import numpy as np
import pytest

from tests.helpers.common import rng_frame, write_video
from jetseg import JetsegError
from jetseg.io.sources import (FLIPS, CaptureSource, ImageSource, csi_pipeline, flip_frame,
                            gstreamer_available, open_source)




@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(3):
        cv2.imwrite(str(d / "{}.png".format(i)), rng_frame(20, 10, seed=i))
    (d / "readme.txt").write_text("skip me")
    return d


def test_folder_glob_and_single_image(folder):
    src = open_source(str(folder))
    assert isinstance(src, ImageSource) and not src.live
    names = [n for n, _ in src]
    assert [n.rsplit("/", 1)[-1] for n in names] == ["0.png", "1.png", "2.png"]
    assert len(list(open_source(str(folder / "[12].png")))) == 2
    (name, frame), = list(open_source(str(folder / "1.png")))
    assert np.array_equal(frame, rng_frame(20, 10, seed=1))


def test_loop_replays_files(folder, tmp_path):
    assert len(list(open_source(str(folder), loop=1))) == 6
    vid = write_video(tmp_path / "v.avi", frames=5)
    assert len(list(open_source(vid, loop=2))) == 15


def test_video_file_frames_fps_and_resize(tmp_path):
    vid = write_video(tmp_path / "v.avi", frames=7, fps=12.0)
    src = open_source(vid)
    assert isinstance(src, CaptureSource) and not src.live and abs(src.fps - 12.0) < 0.01
    frames = list(src)
    assert len(frames) == 7 and frames[0][0] == "v_00000" and frames[0][1].shape == (48, 64, 3)
    small = list(open_source(vid, width=32, height=24))
    assert small[0][1].shape == (24, 32, 3)


@pytest.mark.parametrize("flip", FLIPS)
def test_flips_match_jetson_inference_meaning(flip):
    f = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = flip_frame(f, flip)
    expected = {
        "none": f, "horizontal": f[:, ::-1], "vertical": f[::-1], "rotate-180": f[::-1, ::-1],
        "clockwise": np.rot90(f, -1), "counterclockwise": np.rot90(f, 1),
        "upper-left-diagonal": f.transpose(1, 0, 2),
        "upper-right-diagonal": f[::-1, ::-1].transpose(1, 0, 2),
    }[flip]
    assert np.array_equal(out, expected)


def test_csi_pipeline_string():
    p = csi_pipeline(1, 1280, 720, 30, "rotate-180")
    assert p.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM)")
    assert "width=(int)1280" in p and "framerate=(fraction)30/1" in p
    assert "nvvidconv flip-method=2" in p and p.endswith("appsink drop=true max-buffers=1 "
                                                         "sync=false")


@pytest.mark.skipif(gstreamer_available(), reason="this OpenCV has GStreamer")
def test_csi_without_gstreamer_says_how_to_fix():
    for uri in ("csi://0", "rtp://@:1234"):
        with pytest.raises(JetsegError) as e:
            open_source(uri)
        assert "python3-opencv" in str(e.value) and "pip" in str(e.value)


@pytest.mark.parametrize("uri, needle", [
    ("/dev/video97", "no such camera"), ("v4l2:///dev/video97", "no such camera"),
    ("nothing_here.mp4", "no such file"), ("csi://x", "not a number"),
])
def test_sources_that_cannot_open(uri, needle):
    if uri.startswith("csi") and not gstreamer_available():
        needle = "GStreamer"
    with pytest.raises(JetsegError, match=needle):
        open_source(uri)


def test_bad_flip_and_empty_folder(tmp_path):
    with pytest.raises(JetsegError, match="unknown flip='sideways'"):
        open_source(str(tmp_path), flip="sideways")
    from jetseg.errors import command_line_names
    with command_line_names(), pytest.raises(JetsegError, match="unknown --input-flip sideways"):
        open_source(str(tmp_path), flip="sideways")
    with pytest.raises(JetsegError, match="holds no images"):
        open_source(str(tmp_path))
