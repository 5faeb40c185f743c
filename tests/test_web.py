"""The web view: HTTP endpoints, and the page in a real headless Chromium."""
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import cv2
import numpy as np
import onnx
import pytest

from tests.helpers.common import COLORS5, NAMES5, ROOT, count_frames, free_port, write_video
from jetseg import JetsegError, Segmenter
from jetseg.io.web import WebView
from jetseg_export.compose import compose
from tests.helpers.tinymodels import TinyNet, colour_frame


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("web")
    path = d / "net.onnx"
    onnx.save(compose(TinyNet(num_classes=5, width=64, height=48).onnx(), NAMES5, COLORS5),
              str(path))
    return str(path)


def _get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def test_endpoints_serve_the_latest_frame(model):
    seg = Segmenter(model)
    view = WebView("127.0.0.1:0", seg, title="net.onnx")
    try:
        host, port = view.server.server_address[:2]
        assert host == "127.0.0.1"                                  # loopback unless told
        base = "http://" + view.address
        status, ctype, body = _get(base + "/")
        assert status == 200 and b"net.onnx" in body and b"/stream.mjpg" in body
        assert all(n.encode() in body for n in NAMES5)
        res = seg.process(colour_frame(64, 48))         # smooth: JPEG keeps it close
        res.frame_id = 7
        view.write(res)
        status, ctype, body = _get(base + "/frame.jpg")
        img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert ctype == "image/jpeg" and img.shape == (48, 64, 3)
        assert np.abs(img.astype(int) - res.overlay()).mean() < 6
        stats = json.loads(_get(base + "/stats.json")[2])
        assert stats["frame_id"] == 7 and stats["classes"] == NAMES5
        assert abs(sum(stats["fractions"].values()) - 1) < 1e-3
        with urllib.request.urlopen(base + "/stream.mjpg", timeout=5) as r:
            assert r.headers.get("Content-Type").startswith("multipart/x-mixed-replace")
            view.write(res)
            head = r.read(200)
        assert head.startswith(b"--frame\r\nContent-Type: image/jpeg")
        assert _get_status(base + "/nope") == 404
    finally:
        view.close()


def _get_status(url):
    try:
        return _get(url)[0]
    except urllib.error.HTTPError as e:
        return e.code


def test_port_in_use_is_a_clear_error(model):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        with pytest.raises(JetsegError, match="cannot serve"):
            WebView("127.0.0.1:{}".format(s.getsockname()[1]), Segmenter(model))
    finally:
        s.close()
    with pytest.raises(JetsegError, match="HOST:PORT"):
        WebView("localhost:http", Segmenter(model))




def _request(view, method, path, host=None):
    c = http.client.HTTPConnection(*view.server.server_address[:2], timeout=5)
    c.putrequest(method, path, skip_host=host is not None)
    if host is not None:
        c.putheader("Host", host)
    c.endheaders()
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


def test_safety_headers_head_and_host_check(model):
    seg = Segmenter(model)
    view = WebView("127.0.0.1:0", seg, title="net.onnx")
    try:
        view.write(seg.process(colour_frame(64, 48)))
        port = view.server.server_address[1]
        for path in ("/", "/app.js", "/stats.json", "/frame.jpg", "/nope"):
            r, body = _request(view, "GET", path)
            assert r.getheader("X-Content-Type-Options") == "nosniff"
            assert r.getheader("X-Frame-Options") == "DENY"
            assert "frame-ancestors 'none'" in r.getheader("Content-Security-Policy")
            assert r.getheader("Cache-Control") == "no-store"
            assert "Python" not in (r.getheader("Server") or "")
            head, nobody = _request(view, "HEAD", path)
            assert head.status == r.status and nobody == b""
            assert head.getheader("Content-Length") == str(len(body))
        head, nobody = _request(view, "HEAD", "/stream.mjpg")
        assert head.status == 200 and nobody == b""
        assert head.getheader("Content-Type").startswith("multipart/x-mixed-replace")
        # bound to loopback: a page on another name (DNS rebinding) gets nothing
        assert _request(view, "GET", "/stats.json", host="evil.example:{}".format(port))[0] \
            .status == 403
        for ok in ("localhost:{}".format(port), "127.0.0.1:{}".format(port), "localhost"):
            assert _request(view, "GET", "/stats.json", host=ok)[0].status == 200
    finally:
        view.close()


def test_any_host_when_bound_to_every_interface(model):
    view = WebView("0.0.0.0:0", Segmenter(model))
    try:
        r, _ = _request(view, "GET", "/stats.json", host="drone.local:8080")
        assert r.status == 200
    finally:
        view.close()


def test_idle_connections_are_closed_and_capped(model):
    view = WebView("127.0.0.1:0", Segmenter(model), max_clients=3, timeout=0.5)
    try:
        idle = [socket.create_connection(view.server.server_address[:2], timeout=10)
                for _ in range(3)]
        extra = socket.create_connection(view.server.server_address[:2], timeout=10)
        assert extra.recv(100) == b""               # over the cap: closed at once
        for s in idle:
            assert s.recv(100) == b""               # said nothing: closed after the timeout
            s.close()
        extra.close()
        assert _request(view, "GET", "/stats.json")[0].status == 200    # slots free again
    finally:
        view.close()


class _Camera(object):
    """jetseg-camera in a subprocess, its stderr lines collected as they come."""

    def __init__(self, args, **popen):
        self.p = subprocess.Popen([sys.executable, "-m", "jetseg.cli.camera"] + args,
                                  cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, **popen)
        self.err = []
        self.t = threading.Thread(target=lambda: self.err.extend(self.p.stderr))
        self.t.daemon = True
        self.t.start()

    def wait_for(self, text, limit=120):
        deadline = time.time() + limit
        while time.time() < deadline and self.p.poll() is None:
            if any(text in line for line in list(self.err)):
                return
            time.sleep(0.05)
        raise AssertionError("".join(self.err))

    def stop(self, sig=signal.SIGINT):
        self.p.send_signal(sig)
        out = self.p.stdout.read()
        self.p.wait(timeout=60)
        self.t.join(timeout=10)
        self.p.stdout.close()
        return self.p.returncode, out, "".join(self.err)


def test_serve_needs_no_display_and_keeps_the_last_frame_of_a_file(model, tmp_path):
    clip = write_video(tmp_path / "clip.avi", frames=10)
    port = free_port()
    cam = _Camera(["--engine", model, clip, "--serve", "127.0.0.1:{}".format(port)],
                  env=dict(os.environ, DISPLAY="", WAYLAND_DISPLAY=""))     # no --headless
    cam.wait_for("shows its last frame until Ctrl-C")
    base = "http://127.0.0.1:{}".format(port)
    page = _get(base + "/")[2].decode()
    assert "net.onnx" in page and str(tmp_path) not in page    # no absolute model path
    stats = json.loads(_get(base + "/stats.json")[2])
    assert stats["ended"] is True and stats["frames"] == 10 and stats["frame_id"] == 9
    img = cv2.imdecode(np.frombuffer(_get(base + "/frame.jpg")[2], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (48, 64, 3)
    code, out, err = cam.stop()
    assert code == 0 and "10 frames in" in out and "Traceback" not in err, err


def test_idle_sockets_never_starve_the_camera_of_file_descriptors(model, tmp_path):
    """150 slow clients (a byte a second: the idle timeout never fires) against a process
    allowed 40 descriptors that opens a file for every frame (a folder of images): the web
    view holds at most its cap, so every image is still read and recorded."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(20):
        cv2.imwrite(str(folder / "{:02d}.png".format(i)), colour_frame(64, 48, seed=i))
    port = free_port()

    def few_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
    cam = _Camera(["--engine", model, str(folder), str(tmp_path / "rec.mp4"), "--input-loop",
                   "-1", "--serve", "127.0.0.1:{}".format(port)], preexec_fn=few_fds)
    cam.wait_for("web view on")
    slow = []
    for _ in range(150):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"G")
            slow.append(s)
        except OSError:
            pass
    for _ in range(3):                              # the camera runs on meanwhile
        time.sleep(1.0)
        for s in slow:
            try:
                s.sendall(b"E")
            except OSError:
                pass
    alive = cam.p.poll() is None
    code, out, err = cam.stop()
    for s in slow:
        s.close()
    assert alive and code == 130 and "Traceback" not in err, err
    frames = int(out.split(" frames in")[0].split()[-1])
    assert frames > 20 and count_frames(tmp_path / "rec.mp4") == frames


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1000,600", "--virtual-time-budget=4000"]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install "
                                             "chromium; .ci/run installs it)")
def test_page_in_headless_chromium_shows_the_live_overlay(model, tmp_path):
    clip = write_video(tmp_path / "clip.avi", frames=10)
    port = free_port()
    cam = subprocess.Popen([sys.executable, "-m", "jetseg.cli.camera", "--engine", model, clip,
                            "--headless", "--input-loop", "-1", "--serve",
                            "127.0.0.1:{}".format(port)], cwd=str(ROOT),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = "http://127.0.0.1:{}/".format(port)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if json.loads(_get(url + "stats.json")[2])["frames"] > 0:
                    break
            except Exception:
                time.sleep(0.2)
        shot = tmp_path / "page.png"
        run = lambda *extra: subprocess.run(
            [CHROMIUM] + FLAGS + ["--user-data-dir=" + str(tmp_path / "profile")] +
            list(extra) + [url], capture_output=True, text=True, timeout=60)
        dom = run("--dump-dom").stdout
        assert 'data-loaded="yes"' in dom and "live: 64x48" in dom
        assert "person" in dom                                     # the legend
        run("--screenshot=" + str(shot))
        page = cv2.imread(str(shot))
        assert page is not None and page.shape[:2] == (600, 1000)
        # the overlay image was drawn: the legend swatches' colours fill a real area
        view = page[60:400, 10:520].reshape(-1, 3).astype(int)
        colourful = (view.max(axis=1) - view.min(axis=1)) > 40
        assert colourful.mean() > 0.02
    finally:
        cam.terminate()
        cam.wait(timeout=30)
