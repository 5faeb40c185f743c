"""The flight recorder: a recording survives kill -9, clean stops give normal files, write
faults are reported with the recording kept; real encoders (PyAV's libx264/libx265/mjpeg),
read back by independent decoders (PyAV and OpenCV)."""
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import onnx
import pytest

from jetseg import JetsegError
from jetseg.cli import camera
from jetseg.io import gst
from jetseg.io.outputs import VideoOut
from jetseg.io.sources import gstreamer_available
from jetseg_export.compose import compose
from tests.helpers.common import COLORS5, NAMES5, ROOT, count_frames, write_video
from tests.helpers.tinymodels import TinyNet, colour_frame
from tests.helpers.video import decode, frame_times, top_boxes

av = pytest.importorskip("av", reason="PyAV is the desktop encoder: pip install 'jetseg[video]'")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "net.onnx"
    onnx.save(compose(TinyNet(num_classes=5, width=64, height=48).onnx(), NAMES5, COLORS5),
              str(path))
    return str(path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("clip") / "clip.avi", frames=20)


class Recording(object):
    """jetseg-camera recording a looping clip in a subprocess, its --stats lines timed as
    they arrive."""

    def __init__(self, model, clip, out, *extra, **popen):
        self.out = out
        self.p = subprocess.Popen(
            [sys.executable, "-m", "jetseg.cli.camera", "--engine", model, clip, str(out),
             "--headless", "--input-loop", "-1", "--stats"] + list(extra), cwd=str(ROOT),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
        self.seen = []                      # (arrival time, frame id)
        self.lines = []
        self.reader = threading.Thread(target=self._read)
        self.reader.daemon = True
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line)
            m = re.search(r"  frame +(\d+)  ", line)
            if m:
                self.seen.append((time.time(), int(m.group(1))))

    def wait_frames(self, seconds=None, frames=None, limit=60):
        deadline = time.time() + limit
        while time.time() < deadline and self.p.poll() is None:
            if self.seen and ((seconds and time.time() - self.seen[0][0] >= seconds) or
                              (frames and len(self.seen) >= frames)):
                return
            time.sleep(0.02)
        raise AssertionError("no frames: " + self.p.stderr.read())

    def finish(self, timeout=60):
        self.p.wait(timeout=timeout)
        self.reader.join(timeout=10)
        err = self.p.stderr.read()
        self.p.stderr.close()
        self.p.stdout.close()
        return self.p.returncode, err, "".join(self.lines)


def _hidden(folder):
    return [f for f in os.listdir(str(folder)) if f.startswith(".") or ".part" in f]


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_kill_9_keeps_every_frame_older_than_2_seconds(model, clip, tmp_path, ext):
    out = tmp_path / ("flight" + ext)
    rec = Recording(model, clip, out)
    rec.wait_frames(seconds=4.0)
    rec.p.kill()                                    # SIGKILL: no handler, no trailer
    killed = time.time()
    rec.finish()
    older = [fid for t, fid in rec.seen if t <= killed - 2.0]
    assert older, "no frame was rendered 2 s before the kill"
    playable, codec, _ = decode(out)
    assert codec == "h264"
    assert playable >= older[-1] + 1, (playable, older[-1], len(rec.seen))
    assert count_frames(out) >= older[-1] + 1       # OpenCV plays it too
    assert not _hidden(tmp_path)                    # at the path given, nothing hidden


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 0),
                                       (signal.SIGHUP, 0)])
def test_signals_finish_a_normal_mp4(model, clip, tmp_path, sig, code):
    out = tmp_path / "flight.mp4"
    rec = Recording(model, clip, out)
    rec.wait_frames(frames=30)
    rec.p.send_signal(sig)
    rc, err, stdout = rec.finish()
    assert rc == code, err
    assert "Traceback" not in err
    frames = int(re.search(r"^(\d+) frames in", stdout, re.M).group(1))
    playable, codec, _ = decode(out)
    assert codec == "h264" and playable == frames and count_frames(out) == frames
    boxes = top_boxes(out)
    assert "moov" in boxes and "moof" not in boxes      # a normal MP4, remuxed at the end
    assert not _hidden(tmp_path)


def _fsize_limit(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))   # writes past it: EFBIG
    return apply


def test_full_disk_is_reported_and_the_recording_kept(model, tmp_path):
    noisy = write_video(tmp_path / "noisy.avi", frames=20, size=(320, 240))
    out = tmp_path / "flight.mp4"
    rec = Recording(model, noisy, out, preexec_fn=_fsize_limit(400 * 1024))
    rc, err, _ = rec.finish(timeout=120)
    last = err.strip().splitlines()[-1]
    assert rc == 2 and "Traceback" not in err, err
    assert last.startswith("jetseg-camera: error: " + str(out)) and "fix:" in last, last
    assert "File too large" in last and "recording stopped after" in last
    written = int(re.search(r"after (\d+) frames", last).group(1))
    playable, codec, _ = decode(out)
    assert codec == "h264" and 0 < playable <= written


def test_folder_removed_mid_run(model, clip, tmp_path):
    folder = tmp_path / "sd"
    out = folder / "flight.mp4"
    rec = Recording(model, clip, out)
    rec.wait_frames(seconds=1.5)
    shutil.rmtree(str(folder))
    rc, err, _ = rec.finish()
    last = err.strip().splitlines()[-1]
    assert rc == 2 and "Traceback" not in err, err
    assert "deleted while recording" in last and "saved again" in last and "fix:" in last
    playable, codec, _ = decode(out)                # saved again where the user looks
    assert codec == "h264" and playable > 0


# ---- codecs, timestamps, backends (in-process) ----------------------------------------------
@pytest.mark.parametrize("codec, ext, name", [("h264", ".mov", "h264"), ("h265", ".mkv", "hevc"),
                                              ("mjpeg", ".avi", "mjpeg")])
def test_codecs_record_what_was_given(tmp_path, codec, ext, name):
    path = tmp_path / ("out" + ext)
    frame = np.zeros((72, 96, 3), np.uint8)
    frame[:, :32] = (200, 40, 10)                       # blue, green, red blocks (BGR)
    frame[:, 32:64] = (20, 180, 30)
    frame[:, 64:] = (10, 30, 220)
    v = VideoOut(path, fps=10, codec=codec)
    for i in range(12):
        v.write("f", frame)
    v.close()
    n, got, first = decode(path)
    assert (n, got) == (12, name)
    # colours as given (BGR in, BGR out), to within lossy coding
    for x in (16, 48, 80):
        assert np.abs(first[0][20:50, x - 8:x + 8].mean(axis=(0, 1)) - frame[0, x]).max() < 8


def test_live_recording_keeps_capture_times(tmp_path):
    path = tmp_path / "live.mkv"
    v = VideoOut(path, fps=30, live=True)
    t0 = 1000.0
    offsets = [0.0, 0.1, 0.5, 0.55, 2.0]                 # a camera that stalls, then resumes
    for dt in offsets:
        v.write("f", colour_frame(64, 48), t0 + dt)
    v.close()
    assert np.allclose(frame_times(path), offsets, atol=0.002)


def test_odd_sizes_and_size_changes_are_recorded(tmp_path):
    path = tmp_path / "odd.mp4"
    v = VideoOut(path, fps=10)
    v.write("a", colour_frame(65, 49))
    v.write("b", colour_frame(80, 60))                   # resized to the first frame's size
    v.close()
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (66, 50)
    assert decode(path)[0] == 2


def test_opencv_fallback_warns_what_to_install(tmp_path, caplog):
    path = tmp_path / "cv.mp4"
    v = VideoOut(path, fps=10, backend="opencv")
    for _ in range(5):
        v.write("f", colour_frame(64, 48))
    v.close()
    assert "jetseg[video]" in caplog.text and "not H264" in caplog.text
    assert count_frames(path) == 5


@pytest.mark.skipif(gstreamer_available(), reason="this OpenCV has GStreamer")
def test_gstreamer_asked_for_where_there_is_none(tmp_path):
    with pytest.raises(JetsegError) as e:
        VideoOut(tmp_path / "x.mp4", backend="gstreamer")
    assert "GStreamer" in str(e.value) and "python3-opencv" in str(e.value)


def test_gstreamer_pipelines_for_a_jetson():
    """The strings JetPack's OpenCV gets (running them needs a Jetson)."""
    p = gst.file_pipeline('/data/my "run".mp4', "mp4", "h264", "nvv4l2h264enc", 4000, 30)
    assert p.startswith("appsrc ! video/x-raw, format=(string)BGR ! videoconvert ! "
                        "video/x-raw, format=(string)BGRx ! nvvidconv ! "
                        "video/x-raw(memory:NVMM), format=(string)I420 ! nvv4l2h264enc ")
    assert "bitrate=4000000 iframeinterval=30 idrinterval=30 insert-sps-pps=true" in p
    assert p.endswith('! h264parse ! mp4mux fragment-duration=1000 ! filesink '
                      'location="/data/my \\"run\\".mp4" sync=false')
    p = gst.file_pipeline("a.mkv", "matroska", "h265", "x265enc", 2000, 25)
    assert "videoconvert ! video/x-raw, format=(string)I420 ! x265enc tune=zerolatency" in p
    assert "key-int-max=25 bitrate=2000 ! h265parse ! matroskamux" in p
    p = gst.rtp_pipeline("192.168.1.20", 5600, "h264", "nvv4l2h264enc", 4000, 30)
    assert p.endswith("h264parse ! rtph264pay config-interval=1 pt=96 mtu=1400 ! "
                      "udpsink host=192.168.1.20 port=5600 sync=false async=false")
    assert 'udpsrc name=pay0 port=5400 ' in gst.rtsp_launch(5400, "h264")
    assert "encoding-name=(string)H264, payload=96" in gst.rtsp_launch(5400, "h264")


# ---- bad input: one line naming the output and the fix, exit 2 --------------------------------
def _bad(capsys, argv, *needles):
    code = camera.main(argv)
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err, err
    assert last.startswith("jetseg-camera: error: ") and "fix:" in last, last
    for n in needles:
        assert n in last, (n, last)
    return last


def test_bad_outputs_are_one_line(model, clip, tmp_path, capsys):
    run = lambda out, *a: ["--engine", model, clip, str(out), "--headless"] + list(a)
    _bad(capsys, run(tmp_path / "a.mp4", "--output-codec", "vp9"), "a.mp4", "vp9", "h264")
    _bad(capsys, run(tmp_path / "a.avi", "--output-codec", "h265"), "a.avi", "H.265")
    _bad(capsys, run(tmp_path / "a.mp4", "--bitrate", "4000000"), "kbit/s")
    _bad(capsys, run(tmp_path / "a.webm"), "a.webm", ".mp4")
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    _bad(capsys, run(blocker / "a.mp4"), "a.mp4", "folder")
    _bad(capsys, run(clip), clip, "input")
    _bad(capsys, run("rtp://no-such-host.invalid:5600"), "no-such-host.invalid", "resolve")
    _bad(capsys, run("rtp://127.0.0.1:99999"), "rtp://127.0.0.1:99999", "PORT")
    _bad(capsys, run("rtp://127.0.0.1"), "rtp://127.0.0.1", "PORT")
    try:
        import gi
        gi.require_version("GstRtspServer", "1.0")
    except (ImportError, ValueError):                           # no RTSP server here: say so
        _bad(capsys, run("rtsp://@:8554/live"), "rtsp://@:8554/live", "gst-rtsp-server",
             "rtp://")
    assert sorted(os.listdir(str(tmp_path))) == ["file"]       # nothing left behind
