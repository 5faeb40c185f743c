"""The web view: HTTP endpoints, and the page in a real headless Chromium."""
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import onnx
import pytest

from tests.helpers.common import COLORS5, NAMES5, ROOT, free_port, write_video
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
