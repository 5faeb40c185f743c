"""The web view (``--serve HOST:PORT``): live overlay as MJPEG, fps, latency, class shares,
legend. Standard library only; binds 127.0.0.1 unless told otherwise.

    /              the page (and /app.js, its script)
    /stream.mjpg   multipart JPEG stream of the latest rendered frame
    /frame.jpg     the latest frame
    /stats.json    {"fps", "latency_p50_ms", "frame_id", "fractions": {...}, "classes": [...],
                    "stale", "ended"}

Built to sit next to a camera loop on a drone: at most ``max_clients`` connections at once
(more are closed at once, so its sockets never take the file descriptors the camera needs),
idle ones closed after ``timeout`` seconds, the Host header checked when bound to loopback
(no DNS rebinding), nosniff / no framing / no-store headers, HEAD answered. With ``linger``
the page keeps showing the last frame after the loop ends, until ``shutdown()``.
"""
import json
import socket
import threading
import time

from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn

from jetseg.errors import JetsegError, log, need_cv2
from jetseg.io.outputs import picture_for

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>jetseg live</title>
<style>
 body {{ font-family: sans-serif; background: #111; color: #eee; margin: 1em; }}
 #wrap {{ display: flex; gap: 1.5em; flex-wrap: wrap; }}
 #view {{ max-width: 100%; border: 1px solid #444; background: #222; min-width: 320px;
          min-height: 240px; }}
 table {{ border-collapse: collapse; }} td {{ padding: 2px 6px; }}
 .sw {{ width: 14px; height: 14px; display: inline-block; border: 1px solid #888; }}
 .bar {{ background: #4a8; height: 10px; }}
 #status {{ color: #8c8; }}
</style></head>
<body>
<h2>jetseg &mdash; {model}</h2>
<div id="wrap">
 <div><img id="view" src="/stream.mjpg" alt="live overlay">
  <p id="status" data-loaded="no">waiting for frames&hellip;</p>
  <p>fps <b id="fps">-</b> &middot; latency p50 <b id="lat">-</b> ms &middot; frame <b id="fid">-</b>
   <b id="note"></b></p>
 </div>
 <div><h3>classes</h3><table id="legend">{rows}</table></div>
</div>
<script src="/app.js"></script></body></html>
"""

SCRIPT = """const img = document.getElementById('view');
function loaded() {
  if (img.naturalWidth > 0) {
    const s = document.getElementById('status');
    s.dataset.loaded = 'yes';
    s.textContent = 'live: ' + img.naturalWidth + 'x' + img.naturalHeight;
  }
}
img.addEventListener('load', loaded);
setInterval(loaded, 200);
async function poll() {
  try {
    const r = await fetch('/stats.json'); const s = await r.json();
    document.getElementById('fps').textContent = s.fps.toFixed(1);
    document.getElementById('lat').textContent = (s.latency_p50_ms || 0).toFixed(1);
    document.getElementById('fid').textContent = s.frame_id;
    document.getElementById('note').textContent = s.ended ?
      'input ended: the last frame' : (s.stale ? 'STALE: no frames from the camera' : '');
    s.classes.forEach((name, i) => {
      const f = (s.fractions[name] || 0);
      const bar = document.getElementById('bar' + i);
      if (bar) bar.style.width = Math.round(200 * f) + 'px';
      const pc = document.getElementById('pc' + i);
      if (pc) pc.textContent = (100 * f).toFixed(1) + '%';
    });
  } catch (e) {}
}
setInterval(poll, 500); poll();
"""

SAFETY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class _Server(ThreadingMixIn, HTTPServer):
    """At most ``max_clients`` connections: the next ones are closed as they are accepted."""
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64         # a burst of connects waits for accept(), not a SYN retry
    max_clients = 16

    def server_activate(self):
        HTTPServer.server_activate(self)
        self.active = 0
        self.refused = 0
        self.lock = threading.Lock()

    def verify_request(self, request, client_address):
        with self.lock:
            if self.active >= self.max_clients:
                self.refused += 1
                return False
            self.active += 1
            return True

    def process_request_thread(self, request, client_address):
        try:
            ThreadingMixIn.process_request_thread(self, request, client_address)
        finally:
            with self.lock:
                self.active -= 1


def _loopback(host):
    return host in LOOPBACK_NAMES or host.startswith("127.")


class WebView(object):
    """A sink: ``write(result)`` publishes the latest frame; pages and streams read it."""

    def __init__(self, address="127.0.0.1:8080", segmenter=None, visualize="overlay",
                 title="", stats=None, quality=80, max_clients=16, timeout=10.0, linger=False):
        host, _, port = str(address).rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            port = int(port)
        except ValueError:
            raise JetsegError("--serve {!r} is not HOST:PORT".format(address),
                              fix="write e.g. --serve 127.0.0.1:8080")
        self.cv2 = need_cv2("the web view")
        self.visualize = visualize if visualize != "classes" else "overlay"
        self.segmenter = segmenter
        self.title = title
        self.stats = stats
        self.quality = int(quality)
        self.linger = linger
        self.cond = threading.Condition()
        self.seq = 0
        self.image = None
        self.jpeg = None
        self.jpeg_seq = -1
        self.info = {"frame_id": None, "fractions": {}}
        self.closed = False
        self.ended = False
        view = self
        allowed = None
        if _loopback(host):                 # a page elsewhere must not reach us by DNS tricks
            allowed = set(LOOPBACK_NAMES) | set(["[::1]"])

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"
            server_version = "jetseg"
            sys_version = ""

            def setup(self):
                self.timeout = timeout      # idle or stalled clients are dropped
                BaseHTTPRequestHandler.setup(self)

            def log_message(self, fmt, *args):
                log.debug("web: " + fmt, *args)

            def do_HEAD(self):
                self._answer(head=True)

            def do_GET(self):
                self._answer(head=False)

            def _answer(self, head):
                path = self.path.split("?")[0]
                try:
                    if allowed is not None and not self._host_ok():
                        self._send(403, "text/plain", b"unexpected Host header", head)
                    elif path in ("/", "/index.html"):
                        self._send(200, "text/html; charset=utf-8", view.page().encode("utf-8"),
                                   head)
                    elif path == "/app.js":
                        self._send(200, "application/javascript; charset=utf-8",
                                   SCRIPT.encode("utf-8"), head)
                    elif path == "/stats.json":
                        self._send(200, "application/json",
                                   json.dumps(view.stats_dict()).encode("utf-8"), head)
                    elif path == "/frame.jpg":
                        jpg = view.latest_jpeg(wait=0.0 if head else 2.0)
                        if jpg is None:
                            self._send(503, "text/plain", b"no frame yet", head)
                        else:
                            self._send(200, "image/jpeg", jpg, head)
                    elif path == "/stream.mjpg":
                        self._stream(head)
                    else:
                        self._send(404, "text/plain", b"not found", head)
                except (socket.error, IOError):
                    pass            # the browser went away, or stalled past the timeout

            def _host_ok(self):
                host = self.headers.get("Host")
                if host is None:
                    return True     # HTTP/1.0 tools; browsers always send one
                name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
                return name.lower() in allowed

            def _headers(self, code, ctype, length=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                if length is not None:
                    self.send_header("Content-Length", str(length))
                for k, v in SAFETY_HEADERS:
                    self.send_header(k, v)
                self.end_headers()

            def _send(self, code, ctype, body, head=False):
                self._headers(code, ctype, len(body))
                if not head:
                    self.wfile.write(body)

            def _stream(self, head):
                self._headers(200, "multipart/x-mixed-replace; boundary=frame")
                if head:
                    return
                last = -1
                while not view.closed:
                    jpg, last = view.next_jpeg(last, timeout=1.0)
                    if jpg is None:
                        continue
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     + str(len(jpg)).encode() + b"\r\n\r\n" + jpg + b"\r\n")
                    self.wfile.flush()

        try:
            self.server = _Server((host, port), Handler)
        except (socket.error, OSError) as e:
            raise JetsegError("cannot serve on {}:{}: {}".format(host, port, e.strerror or e),
                              fix="choose a free port, e.g. --serve 127.0.0.1:8081")
        self.server.max_clients = int(max_clients)
        self.address = "{}:{}".format(host, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="jetseg-web")
        self.thread.daemon = True
        self.thread.start()
        log.info("web view on http://%s/", self.address)

    # ---- the sink side -----------------------------------------------------------------
    def write(self, res):
        image = picture_for(res, self.visualize)
        fractions = res.class_fractions()
        with self.cond:
            self.image = image
            self.seq += 1
            self.info = {"frame_id": getattr(res, "frame_id", self.seq),
                         "fractions": dict((n, round(f, 4)) for n, f in fractions.items())}
            self.cond.notify_all()

    def close(self):
        """The loop ended: with ``linger`` the page keeps showing the last frame until
        ``shutdown()``; without, the server stops now."""
        self.ended = True
        if not self.linger:
            self.shutdown()

    def shutdown(self):
        if self.closed:
            return
        self.closed = True
        with self.cond:
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # ---- the server side ---------------------------------------------------------------
    def _encode_locked(self):
        if self.jpeg_seq != self.seq and self.image is not None:
            ok, buf = self.cv2.imencode(".jpg", self.image,
                                        [self.cv2.IMWRITE_JPEG_QUALITY, self.quality])
            self.jpeg, self.jpeg_seq = buf.tobytes(), self.seq
        return self.jpeg

    def latest_jpeg(self, wait=0.0):
        deadline = time.time() + wait
        with self.cond:
            while self.image is None and time.time() < deadline and not self.closed:
                self.cond.wait(0.1)
            return self._encode_locked()

    def next_jpeg(self, last, timeout=1.0):
        """The first frame newer than ``last`` (encoded once, shared by all clients)."""
        with self.cond:
            if self.seq == last:
                self.cond.wait(timeout)
            if self.seq == last or self.image is None:
                return None, last
            return self._encode_locked(), self.seq

    def stats_dict(self):
        with self.cond:
            out = dict(self.info)
        s = self.stats.as_dict() if self.stats is not None else {}
        out["fps"] = s.get("fps", 0.0)
        out["latency_p50_ms"] = s.get("latency_p50_ms")
        out["latency_p99_ms"] = s.get("latency_p99_ms")
        out["frames"] = s.get("frames", 0)
        out["classes"] = list(self.segmenter.classes) if self.segmenter else []
        out["stale"] = bool(s.get("stale"))
        out["ended"] = self.ended
        return out

    def page(self):
        rows = []
        if self.segmenter is not None:
            for i, (name, col) in enumerate(zip(self.segmenter.classes, self.segmenter.colors)):
                rows.append('<tr><td><span class="sw" style="background:rgb({},{},{})"></span>'
                            '</td><td>{}</td><td><div class="bar" id="bar{}" style="width:0">'
                            '</div></td><td id="pc{}"></td></tr>'.format(
                                col[0], col[1], col[2], _html(name), i, i))
        return PAGE.format(model=_html(self.title), rows="".join(rows))


def _html(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))
