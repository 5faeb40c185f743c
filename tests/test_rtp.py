"""rtp://HOST:PORT: H.264 over RTP/UDP, received and decoded here by FFmpeg's own RTP/SDP
demuxer (through PyAV) from the SDP file jetseg writes; a receiver that is absent or never
reads does not hold the camera loop."""
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import onnx
import pytest

from jetseg.io.rtp import RtpOut, parse_rtp, sdp_text
from jetseg_export.compose import compose
from tests.helpers.common import COLORS5, NAMES5, ROOT, count_frames, write_video
from tests.helpers.tinymodels import TinyNet, colour_frame

av = pytest.importorskip("av", reason="PyAV is the desktop encoder: pip install 'jetseg[video]'")


def _free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _udp_bound(port):
    """Whether some socket has bound UDP ``port`` (Linux: /proc/net/udp, udp6)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                rows = f.readlines()[1:]
        except IOError:
            continue
        if any(int(line.split()[1].rsplit(":", 1)[1], 16) == port for line in rows):
            return True
    return False


class Receiver(object):
    """FFmpeg's RTP demuxer on an SDP file, decoding in a thread until 2 s of silence."""

    def __init__(self, sdp):
        self.frames, self.error = [], None
        self.thread = threading.Thread(target=self._run, args=(str(sdp),))
        self.thread.daemon = True
        self.thread.start()

    def _run(self, sdp):
        try:
            with av.open(sdp, format="sdp", timeout=(10, 2), options={
                    "protocol_whitelist": "file,udp,rtp", "timeout": "2000000"}) as c:
                self.codec = c.streams.video[0].codec_context.name
                try:
                    for f in c.decode(video=0):
                        self.frames.append(f.to_ndarray(format="bgr24"))
                except Exception:
                    pass                                # silence: the sender stopped
        except Exception as e:
            self.error = e


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/udp")
def test_rtp_is_received_and_decoded(tmp_path):
    port = _free_udp_port()
    sdp = tmp_path / "ground.sdp"
    out = RtpOut("rtp://127.0.0.1:{}?sdp={}".format(port, sdp))
    text = sdp.read_text()
    assert "m=video {} RTP/AVP 96".format(port) in text and "H264/90000" in text
    rx = Receiver(sdp)
    deadline = time.time() + 20
    while not _udp_bound(port) and time.time() < deadline:
        time.sleep(0.01)
    assert _udp_bound(port), rx.error
    frame = colour_frame(96, 72)
    sent = 60
    for i in range(sent):
        out.write("f", frame, 100.0 + i / 30.0)
        time.sleep(1 / 60.0)
    out.close()
    rx.thread.join(timeout=30)
    assert rx.error is None, rx.error
    assert rx.codec == "h264"
    assert sent - 3 <= len(rx.frames) <= sent               # loopback: a few lost at most
    assert rx.frames[-1].shape == (72, 96, 3)
    assert np.abs(rx.frames[-1].astype(int) - frame).mean() < 12


def test_rtp_addresses_and_sdp():
    assert parse_rtp("rtp://192.168.1.20:5600") == ("192.168.1.20", 5600,
                                                     "rtp-192.168.1.20-5600.sdp")
    assert parse_rtp("rtp://[::1]:5600?sdp=/tmp/x.sdp") == ("::1", 5600, "/tmp/x.sdp")
    text = sdp_text("::1", 5600, "h265", socket.AF_INET6)
    assert "c=IN IP6 ::1" in text and "a=rtpmap:96 H265/90000" in text


@pytest.mark.parametrize("receiver", ["absent", "never reads"])
def test_a_missing_or_stuck_receiver_does_not_hold_the_loop(tmp_path, receiver):
    """The recording next to the stream keeps every frame; the stream just drops."""
    model = tmp_path / "net.onnx"
    onnx.save(compose(TinyNet(num_classes=5, width=64, height=48).onnx(), NAMES5, COLORS5),
              str(model))
    clip = write_video(tmp_path / "clip.avi", frames=40, size=(320, 240))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if receiver == "absent":
        sock.close()                                  # nobody listens: ICMP port unreachable
    else:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # bound, never read
    try:
        r = subprocess.run([sys.executable, "-m", "jetseg.cli.camera", "--engine", str(model),
                            clip, str(tmp_path / "rec.mp4"),
                            "rtp://127.0.0.1:{}?sdp={}".format(port, tmp_path / "s.sdp"),
                            "--headless", "--input-loop", "2"], cwd=str(ROOT),
                           capture_output=True, text=True, timeout=120)
    finally:
        sock.close()
    assert r.returncode == 0, r.stderr
    assert "120 frames in" in r.stdout
    assert count_frames(tmp_path / "rec.mp4") == 120
