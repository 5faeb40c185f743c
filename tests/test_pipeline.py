"""The live loop: no frame lost from files, no backlog from live sources, faults, signals."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import onnx
import pytest

import jetseg
import jetseg.io.sources
from tests.helpers.common import COLORS5, NAMES5, ROOT, count_frames, rng_frame, write_video
from jetseg import JetsegError, Segmenter
from jetseg.io.pipeline import Pipeline, Reservoir
from jetseg.io.sources import Source
from jetseg_export.compose import compose
from tests.helpers.tinymodels import TinyNet


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    net = TinyNet(num_classes=5, width=64, height=48, down=4)
    path = d / "net.onnx"
    onnx.save(compose(net.onnx(), NAMES5, COLORS5, scores=True), str(path))
    return str(path)






class FakeCamera(Source):
    """A live source: frames as fast as asked, optionally 'unplugged' for a while."""
    live = True
    uri = "fake://cam"

    def __init__(self, frames=100, drop_after=None, interval=0.0):
        self.left, self.drop_after, self.interval = frames, drop_after, interval
        self.produced = 0
        self.reopened = 0
        self.unplugged = False

    def read(self):
        if self.unplugged or self.left <= 0:
            return None
        if self.drop_after is not None and self.produced == self.drop_after:
            self.unplugged = True
            self.drop_after = None
            return None
        time.sleep(self.interval)
        self.left -= 1
        self.produced += 1
        return "cam_{}".format(self.produced - 1), rng_frame(64, 48, seed=self.produced % 7)

    def reopen(self):
        self.reopened += 1
        self.unplugged = False


class Collect(object):
    def __init__(self, delay=0.0):
        self.ids, self.delay, self.closed = [], delay, False

    def write(self, res):
        time.sleep(self.delay)
        self.ids.append(res.frame_id)

    def close(self):
        self.closed = True


def test_file_source_loses_no_frame(model, tmp_path):
    src = jetseg.io.sources.open_source(write_video(tmp_path / "in.avi", frames=15))
    sink = Collect(delay=0.01)
    stats = Pipeline(src, Segmenter(model), [sink]).run()
    assert sink.ids == list(range(15)) and stats.frames == 15 and stats.dropped == 0
    assert sink.closed
    assert stats.stages["latency"].count == 15 and "p99" in stats.summary()


def test_live_source_drops_oldest_instead_of_queueing(model):
    cam = FakeCamera(frames=120)
    sink = Collect(delay=0.02)                          # a slow consumer
    stats = Pipeline(cam, Segmenter(model), [sink], reconnect=False).run()
    assert stats.dropped > 0 and len(sink.ids) < 120
    assert sink.ids == sorted(sink.ids) and sink.ids[-1] >= 110   # ends near the newest
    assert stats.stages["latency"].percentile(99) < 1000


def test_lost_camera_is_reopened_with_backoff(model, caplog):
    cam = FakeCamera(frames=20, drop_after=5)
    sink = Collect()
    stats = Pipeline(cam, Segmenter(model), [sink], retry_limit=2).run()
    # unplugged after 5 frames: one reopen brings the other 15 back; at the real end the
    # loop tries twice more (retry_limit) and then gives up
    assert cam.produced == 20 and len(sink.ids) >= 2 and max(sink.ids) >= 15
    assert cam.reopened == 3 and stats.reconnects == 3
    assert "reopening" in caplog.text and "gave up" in caplog.text


def test_stop_from_another_thread_closes_sinks(model):
    cam = FakeCamera(frames=10 ** 6, interval=0.001)
    sink = Collect()
    pipe = Pipeline(cam, Segmenter(model), [sink])
    threading.Timer(0.5, pipe.stop).start()
    t0 = time.time()
    pipe.run()
    assert time.time() - t0 < 5 and sink.closed and len(sink.ids) > 0


def test_sink_error_stops_the_loop_and_is_raised(model, tmp_path):
    class Broken(Collect):
        def write(self, res):
            raise JetsegError("disk full", path="out.mp4", fix="free some space")
    src = jetseg.io.sources.open_source(write_video(tmp_path / "in.avi", frames=30))
    with pytest.raises(JetsegError, match="disk full"):
        Pipeline(src, Segmenter(model), [Broken()]).run()


def test_a_failing_sink_is_closed_and_the_others_go_on(model, tmp_path):
    """A recording that fails (disk full) must not stop the signals or the other outputs;
    its error still ends the run non-zero."""
    class Broken(Collect):
        def write(self, res):
            if res.frame_id == 3:
                raise JetsegError("disk full", path="out.mp4", fix="free some space")
            Collect.write(self, res)
    src = jetseg.io.sources.open_source(write_video(tmp_path / "in.avi", frames=12))
    broken, good = Broken(), Collect()
    pipe = Pipeline(src, Segmenter(model), [broken, good])
    with pytest.raises(JetsegError, match="disk full"):
        pipe.run()
    assert broken.closed and broken.ids == [0, 1, 2] and good.ids == list(range(12))
    assert pipe.failed[0][0] is broken and good.closed


class HangingCamera(FakeCamera):
    """A live source whose read() hangs once (an upstream that stops sending), until the
    test releases it; the late frame it then returns must not reach the sinks."""

    def __init__(self, frames, hang_after):
        FakeCamera.__init__(self, frames=frames, interval=0.005)
        self.hang_after, self.hung, self.abandoned = hang_after, False, 0
        self.release = threading.Event()

    def read(self):
        if self.produced == self.hang_after and not self.hung:
            self.hung = True
            self.release.wait(30)
            return "late", rng_frame(64, 48)
        return FakeCamera.read(self)

    def abandon(self):
        self.abandoned += 1


def test_a_hung_source_is_stale_reported_and_reopened(model, caplog):
    cam = HangingCamera(frames=40, hang_after=5)
    names, events = [], []

    class Names(Collect):
        def write(self, res):
            names.append(res.name)
            if res.frame_id >= 20:
                cam.release.set()          # the hung read returns now, too late
    seg = Segmenter(model)
    seg.process(rng_frame(64, 48))      # warm (lazy sessions): the instant camera must not
    #                                     outrun the first inference and drop frames 0-4
    pipe = Pipeline(cam, seg, [Names()], retry_limit=0, source_timeout=0.5)
    pipe.on_stale.append(lambda stale: events.append((stale, pipe.stats.stale)))
    stats = pipe.run()
    assert events == [(True, True), (False, False)]        # the hook emitters read
    assert cam.abandoned == 1 and cam.reopened == 1 and stats.reconnects == 1
    assert "late" not in names and names[:5] == ["cam_{}".format(i) for i in range(5)]
    assert "cam_39" in names and not stats.stale and stats.as_dict()["stale"] is False
    assert "results are stale" in caplog.text and "hung" in caplog.text


def test_stream_gives_every_file_frame(model, tmp_path):
    vid = write_video(tmp_path / "in.avi", frames=9)
    with jetseg.stream(vid, model) as s:
        got = [(r.frame_id, r.classes.shape, r.latency_ms is not None) for r in s]
    assert got == [(i, (48, 64), True) for i in range(9)]


def test_stream_latest_result_for_a_slow_consumer(model):
    cam = FakeCamera(frames=300, interval=0.002)
    s = jetseg.stream(cam, model)
    seen = []
    for res in s:
        seen.append(res.frame_id)
        time.sleep(0.05)                                # autopilot at 20 Hz
        if len(seen) == 6:
            break
    latest = s.latest()
    s.close()
    assert latest is not None and latest.frame_id >= seen[-1]
    assert max(np.diff(seen)) > 1                        # skipped stale frames, no backlog
    assert sum(s.stats.stages["latency"].values > 0) > 0


def test_reservoir_is_fixed_size():
    r = Reservoir(size=4)
    for v in range(10):
        r.add(v)
    assert sorted(r.values.tolist()) == [6, 7, 8, 9] and r.percentile(50) == 7.5


# ---- jetseg-camera as a user runs it ---------------------------------------------------------
def test_camera_video_to_video_headless(model, tmp_path):
    src = write_video(tmp_path / "in.avi", frames=20)
    r = subprocess.run([sys.executable, "-m", "jetseg.cli.camera", "--engine", model, src,
                        str(tmp_path / "out.mp4"), str(tmp_path / "f_%03d.jpg"), "--headless",
                        "--stats"], capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert r.returncode == 0, r.stderr
    assert count_frames(tmp_path / "out.mp4") == 20 and (tmp_path / "f_019.jpg").exists()
    assert "20 frames in" in r.stdout and "latency" in r.stdout and "frame      0" in r.stdout


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_camera_signal_leaves_a_playablewrite_video(tmp_path, sig, code):
    net = TinyNet(num_classes=5, width=320, height=240, down=4, hidden=32)
    model = tmp_path / "slow.onnx"
    onnx.save(compose(net.onnx(), NAMES5, COLORS5), str(model))
    src = write_video(tmp_path / "long.avi", frames=60, size=(320, 240))
    out = tmp_path / "out.mp4"
    p = subprocess.Popen([sys.executable, "-m", "jetseg.cli.camera", "--engine", str(model), src,
                          str(out), "--headless", "--input-loop", "-1"], cwd=str(ROOT),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60         # recorded at its own path from the first frame on
    while time.time() < deadline and not (out.exists() and out.stat().st_size > 0):
        time.sleep(0.05)
    time.sleep(1.0)
    p.send_signal(sig)
    stdout, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert "Traceback" not in err and "frames in" in stdout
    assert count_frames(out) > 0
    assert not [f for f in os.listdir(str(tmp_path)) if ".part" in f]


def test_camera_errors_are_one_line(model, tmp_path):
    r = subprocess.run([sys.executable, "-m", "jetseg.cli.camera", "--engine", model, "/dev/video97",
                        "--headless"], capture_output=True, text=True, cwd=str(ROOT))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("jetseg-camera: error: /dev/video97")
    r = subprocess.run([sys.executable, "-m", "jetseg.cli.camera", "--engine", model,
                        str(tmp_path), "display://0"], capture_output=True, text=True,
                       cwd=str(ROOT), env=dict(os.environ, DISPLAY=""))
    assert r.returncode == 2 and "fix:" in r.stderr


def test_polling_latest_never_holds_a_file_back(model, tmp_path):
    vid = write_video(tmp_path / "in.avi", frames=40)
    s = jetseg.stream(vid, model)
    s.latest()                                  # a polling consumer, never iterating
    deadline = time.time() + 30
    while s.running and time.time() < deadline:
        time.sleep(0.05)
    assert not s.running and s.latest().frame_id == 39 and s.stats.frames == 40
    s.close()


def test_polling_that_starts_after_the_queue_filled_still_ends(model, tmp_path):
    """A consumer that first polls when a file's results already fill the queue: the render
    thread was waiting on that queue and never noticed the polling (the stream never ended)."""
    vid = write_video(tmp_path / "in.avi", frames=40)
    s = jetseg.stream(vid, model)
    deadline = time.time() + 30
    while s.stats.frames < 5 and time.time() < deadline:    # 4 queued, the 5th waiting
        time.sleep(0.02)
    s.latest()
    while s.running and time.time() < deadline + 30:
        time.sleep(0.05)
    assert not s.running and s.stats.frames == 40 and s.latest().frame_id == 39
    s.close()


def test_example_script_runs_on_a_clip(model, tmp_path):
    vid = write_video(tmp_path / "in.avi", frames=20)
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "stream_latest.py"), "--engine",
                        model, vid, "--seconds", "5", "--rate", "50", "--class", "road"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("frame")]
    assert lines and "road" in lines[0] and "20 frames in" in r.stdout


def test_camera_single_image_to_image_with_legend(model, tmp_path):
    img = tmp_path / "x.png"
    cv2_frame = rng_frame(64, 48, seed=2)
    import cv2
    cv2.imwrite(str(img), cv2_frame)
    r = subprocess.run([sys.executable, "-m", "jetseg.cli.camera", "--engine", model, str(img),
                        str(tmp_path / "out.png"), "--headless", "--legend",
                        str(tmp_path / "legend.png")], capture_output=True, text=True,
                       cwd=str(ROOT), timeout=120)
    assert r.returncode == 0, r.stderr
    out = cv2.imread(str(tmp_path / "out.png"))
    assert np.array_equal(out, Segmenter(model).process(cv2_frame).overlay())
    assert cv2.imread(str(tmp_path / "legend.png")).shape[0] >= 5 * 20
