"""--emit: the per-frame JSON an autopilot reads, over UDP and to a JSONL file."""
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.helpers.common import ROOT, free_port, write_video
from jetseg import JetsegError, Segmenter
from jetseg.autopilot.emit import SCHEMA, Signals, UdpEmitter, open_emitter
from jetseg_export.compose import compose

W, H = 160, 120


def colour_net(path):
    """A 'model' that calls blue pixels Sky, red ones Road, green ones Car: known truth."""
    w = np.zeros((3, 3, 1, 1), np.float32)
    w[0, 2], w[1, 0], w[2, 1] = 1.0, 1.0, 1.0   # net input is RGB: Sky <- B, Road <- R
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["logits"])], "colour",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, H, W])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, H, W])],
        [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(compose(m, ["Sky", "Road", "Car"], [(70, 130, 180), (128, 64, 128),
                                                  (64, 0, 128)], mean=(0, 0, 0),
                      std=(1, 1, 1)), str(path))
    return str(path)


def scene(roll_deg, pitch, obstacle_left=True):
    """Blue sky over red road, horizon at roll/pitch; a green car on the lower left."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = (0, 0, 255)
    yc = H / 2.0 - pitch * H
    slope = -math.tan(math.radians(roll_deg))               # y down: right end higher
    pts = np.array([[0, 0], [W, 0], [W, yc + slope * (W / 2.0)], [0, yc - slope * (W / 2.0)]])
    cv2.fillPoly(img, [np.round(pts * 16).astype(np.int32)], (255, 0, 0), cv2.LINE_8, 4)
    if obstacle_left:
        img[int(H * 0.6):, :int(W * 0.6)] = (0, 255, 0)
    return img


def test_signals_record_has_the_schema_and_true_values(tmp_path):
    seg = Segmenter(colour_net(tmp_path / "c.onnx"))
    sig = Signals(seg.classes, model="c.onnx")
    assert sig.sky == ["Sky"] and sig.free == ["Road"]
    for _ in range(10):                                      # the filter settles
        res = seg.process(scene(12.0, 0.1))
        res.frame_id, res.captured_at, res.latency_ms = 3, 1000.0, 5.0
        rec = sig.record(res, fps=30.0)
    assert rec["schema"] == SCHEMA and rec["frame_id"] == 3 and rec["width"] == W
    assert abs(rec["horizon"]["roll_deg"] - 12.0) < 1.5
    assert abs(rec["horizon"]["pitch"] - 0.1) < 0.02
    assert rec["free_space"]["heading_deg"] > 0                 # obstacle left: go right
    assert set(rec["fractions"]) == {"Sky", "Road", "Car"} and rec["gates"] == []
    json.dumps(rec)                                              # JSON-ready
    ground = seg.process(np.full((H, W, 3), (0, 0, 255), np.uint8))
    ground.captured_at = 0
    assert sig.record(ground)["gates"] == ["pull_up"]


def test_signals_read_the_nets_own_map_and_answer_in_frame_pixels(tmp_path):
    """A frame larger than the net (or of another aspect): the signals read the net's
    class map and report the horizon of the frame, as the frame's own map would give it."""
    from jetseg import autopilot as ap
    seg = Segmenter(colour_net(tmp_path / "c.onnx"))
    small = scene(12.0, 0.1)
    for fw, fh in [(320, 240), (320, 120)]:            # 2x; 2x wider only (roll flattens)
        res = seg.process(cv2.resize(small, (fw, fh), interpolation=cv2.INTER_NEAREST))
        res.frame_id, res.captured_at, res.latency_ms = 0, 1.0, 1.0
        assert res.classes_lowres.shape == (H, W)
        rec = Signals(seg.classes).record(res)              # first record: the measurement
        h = rec["horizon"]
        full = ap.estimate_horizon(res.classes, ["Sky"], names=seg.classes)
        truth = math.degrees(math.atan(math.tan(math.radians(12.0)) * fh / H * W / fw))
        assert (rec["width"], rec["height"], h["width"], h["height"]) == (fw, fh, fw, fh)
        assert abs(h["roll_deg"] - truth) < 0.5 and abs(full.roll_deg - truth) < 0.5, (h, full)
        assert abs(h["pitch"] - full.pitch) < 0.01
        fs = rec["free_space"]
        assert fs["heading_deg"] > 0 and len(fs["fractions"]) == 9       # car on the left


def test_horizon_rate_measures_at_its_rate_and_predicts_between(tmp_path):
    """--horizon-hz 10 on a 30 fps file: every third frame is measured; the frames between
    carry the filter's line carried forward on its rate (the horizon keeps turning with a
    steadily rolling camera), and predicting leaves the filter as measuring alone would."""
    seg = Segmenter(colour_net(tmp_path / "c.onnx"))
    every = Signals(seg.classes, frame_rate=30.0)
    rated = Signals(seg.classes, frame_rate=30.0, horizon_hz=10)
    recs, full = [], []
    for i in range(30):                                      # rolls 1 degree a frame
        res = seg.process(scene(-15.0 + i, 0.0))
        res.frame_id, res.captured_at, res.latency_ms = i, 1000.0 + i / 30.0, 5.0
        recs.append(rated.record(res)["horizon"])
        full.append(every.record(res)["horizon"])
    assert [r["measured"] for r in recs] == [i % 3 == 0 for i in range(30)]
    assert all(r["measured"] for r in full)
    assert all(r["reason"] == "predicted" for r in recs if not r["measured"])
    late = recs[15:]                                         # the filter has the rate by now
    for a, b in zip(late, late[1:]):
        assert b["roll_deg"] > a["roll_deg"] + 0.3, (a, b)    # predicted frames move too
    assert all(abs(r["roll_deg"] - (-15.0 + i)) < 3.0 for i, r in enumerate(recs) if i >= 15)
    again = Signals(seg.classes, frame_rate=30.0)           # the measured frames alone
    for i in range(0, 30, 3):
        res = seg.process(scene(-15.0 + i, 0.0))
        res.frame_id, res.captured_at, res.latency_ms = i, 1000.0 + i / 30.0, 5.0
        h = again.record(res)["horizon"]
        assert h["roll_deg"] == recs[i]["roll_deg"] and h["pitch"] == recs[i]["pitch"]


def test_horizon_rate_without_a_line_yet_repeats_the_last_measurement(tmp_path):
    seg = Segmenter(colour_net(tmp_path / "c.onnx"))
    sig = Signals(seg.classes, frame_rate=30.0, horizon_hz=5)
    ground = np.full((H, W, 3), (0, 0, 255), np.uint8)       # all road: no sky, no line
    got = []
    for i in range(4):
        res = seg.process(ground)
        res.frame_id, res.captured_at, res.latency_ms = i, 1.0, 1.0
        got.append(sig.record(res)["horizon"])
    assert [h["measured"] for h in got] == [True, False, False, False]
    assert all("no sky" in h["reason"] and h["confidence"] == 0 for h in got)


@pytest.mark.parametrize("hz", ["-1", "nan"])
def test_camera_refuses_a_horizon_rate_that_is_not_one(tmp_path, hz):
    model = colour_net(tmp_path / "c.onnx")
    r = subprocess.run([sys.executable, "-m", "jetseg.cli.camera", "--engine", model,
                        _clip(tmp_path / "c.avi", 2), "--headless", "--emit",
                        "udp://127.0.0.1:9", "--horizon-hz", hz],
                       capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert r.returncode == 2 and "--horizon-hz" in r.stderr and "Traceback" not in r.stderr


def test_unknown_class_names_and_uris_fail_clearly():
    with pytest.raises(JetsegError):
        Signals(["Sky", "Road"], sky_classes=["Heaven"])
    assert Signals(["sky", "road"]).sky == ["sky"]             # defaults by name
    for uri in ("udp://nohost", "tcp://1.2.3.4:5", "jsonl:/no/such/dir/x.jsonl"):
        with pytest.raises(JetsegError):
            open_emitter(uri)


def test_udp_without_a_receiver_never_raises_or_blocks():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                                    # nobody listens there now
    e = UdpEmitter("127.0.0.1", port)
    for _ in range(200):
        e.send(b"x" * 1000)
    assert e.sent + e.dropped == 200
    e.close()


def _clip(path, frames=12):
    return write_video(path, frames, (W, H), frame_fn=lambda i: scene(-20.0 + 2 * i, 0.0))


def test_camera_emits_jsonl_every_frame(tmp_path):
    model = colour_net(tmp_path / "c.onnx")
    out = tmp_path / "run.jsonl"
    r = subprocess.run([sys.executable, "-m", "jetseg.cli.camera", "--engine", model,
                        _clip(tmp_path / "c.avi"), "--headless", "--emit", "jsonl:" + str(out),
                        "--emit", "udp://127.0.0.1:9", "--horizon-hz", "0"],
                       capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(l) for l in out.read_text().splitlines()]
    assert [x["frame_id"] for x in recs] == list(range(12))
    assert all(x["schema"] == SCHEMA and x["latency_ms"] > 0 for x in recs)
    assert all(x["horizon"]["measured"] for x in recs)          # --horizon-hz 0: every frame
    assert abs(recs[-1]["horizon"]["roll_deg"] - 2.0) < 3.0     # the filter lags a little


def test_camera_to_example_autopilot_over_udp(tmp_path):
    model = colour_net(tmp_path / "c.onnx")
    port = free_port()
    pilot = subprocess.Popen([sys.executable, str(ROOT / "examples" / "autopilot_loop.py"),
                              "--port", str(port), "--count", "5", "--timeout", "20"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)                                              # let it bind
    cam = subprocess.run([sys.executable, "-m", "jetseg.cli.camera", "--engine", model,
                          _clip(tmp_path / "c.avi", frames=40), "--headless", "--input-loop",
                          "3", "--emit", "udp://127.0.0.1:{}".format(port)],
                         capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    out, err = pilot.communicate(timeout=60)
    assert cam.returncode == 0, cam.stderr
    lines = [l for l in out.splitlines() if l.startswith("frame")]
    assert len(lines) == 5, out + err
    assert all(" steer " in l or " hold " in l for l in lines)


# ---- faults: a full disk, a stuck writer, paths and addresses that cannot work ----------
def test_bad_emit_targets_fail_at_start_in_one_line(tmp_path):
    for uri, words in [("jsonl:" + str(tmp_path), "is a folder"),
                       ("jsonl:/proc/jetseg-x", "cannot write"),
                       ("jsonl:" + str(tmp_path / "no" / "x.jsonl"), "does not exist"),
                       ("udp://127.0.0.1:99999", "1..65535"),
                       ("udp://no-such-host.invalid:14560", "cannot resolve")]:
        with pytest.raises(JetsegError) as e:
            open_emitter(uri)
        assert words in str(e.value) and "fix:" in str(e.value), uri
    model = colour_net(tmp_path / "c.onnx")
    clip = _clip(tmp_path / "c.avi", frames=3)
    for uri in ("jsonl:" + str(tmp_path), "udp://127.0.0.1:99999"):
        r = subprocess.run([sys.executable, "-m", "jetseg.cli.camera", "--engine", model, clip,
                            "--headless", "--emit", uri], capture_output=True, text=True,
                           cwd=str(ROOT), timeout=120)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_udp_host_is_resolved_once(monkeypatch):
    e = UdpEmitter("localhost", 9)
    socket.inet_pton(socket.AF_INET6 if ":" in e.addr[0] else socket.AF_INET, e.addr[0])

    def no_dns(*a, **k):
        raise AssertionError("resolved again")
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(socket, "gethostbyname", no_dns)
    for _ in range(5):
        e.send(b"x")
    assert e.sent + e.dropped == 5
    e.close()


FULL_DISK = r"""
import json, logging, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
logging.basicConfig(level=logging.INFO)
from jetseg.autopilot.emit import JsonlEmitter
e = JsonlEmitter(sys.argv[1])
for i in range(100):
    e.send((json.dumps({"frame_id": i, "pad": "x" * 60}) + "\n").encode())
e.close()
print(e.sent, e.dropped)
"""


def test_jsonl_lines_are_gathered_into_few_writes(tmp_path, monkeypatch):
    """A burst of records costs a few writes (and writer wake-ups), not one a line; every
    line still arrives whole and in order."""
    from jetseg.autopilot import emit
    writes = []
    real = os.write

    def counting(fd, data):
        writes.append(len(data))
        return real(fd, data)
    monkeypatch.setattr(emit.os, "write", counting)
    out = tmp_path / "burst.jsonl"
    e = emit.JsonlEmitter(str(out))
    for i in range(60):
        e.send(json.dumps({"frame_id": i}).encode() + b"\n")
    e.close()
    assert [json.loads(x)["frame_id"] for x in out.read_text().splitlines()] == list(range(60))
    assert e.sent == 60 and 1 <= len(writes) <= 3, writes


def test_full_disk_leaves_whole_lines_and_says_so(tmp_path):
    out = tmp_path / "run.jsonl"
    r = subprocess.run([sys.executable, "-c", FULL_DISK, str(out)], capture_output=True,
                       text=True, cwd=str(ROOT), timeout=60)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert 0 < len(text) <= 1000 and text.endswith("\n")          # cut back: no half line
    frames = [json.loads(ln)["frame_id"] for ln in text.splitlines()]
    assert frames == list(range(len(frames)))
    assert "failed" in r.stderr and "File too large" in r.stderr


def test_camera_on_dev_full_neither_hangs_nor_dies_silently(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    model = colour_net(tmp_path / "c.onnx")
    clip = _clip(tmp_path / "c.avi", frames=12)
    r = subprocess.run([sys.executable, "-m", "jetseg.cli.camera", "--engine", model, clip,
                        "--headless", "--emit", "jsonl:/dev/full"], capture_output=True,
                       text=True, cwd=str(ROOT), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "writing /dev/full failed (No space left on device)" in r.stderr
    assert "dropped" in r.stderr
    p = subprocess.Popen([sys.executable, "-m", "jetseg.cli.camera", "--engine", model, clip,
                          "--headless", "--input-loop", "-1", "--emit", "jsonl:/dev/full"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=str(ROOT))
    time.sleep(5)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)                   # SIGTERM ends it, no hang
    assert p.returncode == 0 and "frames in" in out, err


def test_close_gives_up_on_a_stuck_writer(tmp_path):
    r_fd, w_fd = os.pipe()                                 # a reader that never reads
    e = open_emitter("jsonl:/proc/self/fd/{}".format(w_fd))
    line = b"y" * 4095 + b"\n"
    for _ in range(300):                                   # 64 KiB pipe: the writer blocks
        e.send(line)
    t0 = time.time()
    e.close(timeout=1.0)
    assert time.time() - t0 < 30                           # it returned (a hang would not)
    assert e.thread.is_alive() and e.dropped > 0
    os.close(r_fd)
    os.close(w_fd)


def test_stale_source_is_said_to_json_receivers(tmp_path):
    from jetseg.autopilot.emit import EmitSink
    out = tmp_path / "sig.jsonl"
    sink = EmitSink(["jsonl:" + str(out)], Signals(["Sky", "Road"]), live=True)
    sink.on_stale(True)
    sink.on_stale(False)
    sink.close()
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["stale"] for r in recs] == [True, False]
    assert all(r["schema"] == SCHEMA for r in recs)
