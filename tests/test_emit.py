"""--emit: the per-frame JSON an autopilot reads, over UDP and to a JSONL file."""
import json
import math
import socket
import subprocess
import sys

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
                        "--emit", "udp://127.0.0.1:9"], capture_output=True, text=True,
                       cwd=str(ROOT), timeout=120)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(l) for l in out.read_text().splitlines()]
    assert [x["frame_id"] for x in recs] == list(range(12))
    assert all(x["schema"] == SCHEMA and x["latency_ms"] > 0 for x in recs)
    assert abs(recs[-1]["horizon"]["roll_deg"] - 2.0) < 3.0     # the filter lags a little


def test_camera_to_example_autopilot_over_udp(tmp_path):
    model = colour_net(tmp_path / "c.onnx")
    port = free_port()
    pilot = subprocess.Popen([sys.executable, str(ROOT / "examples" / "autopilot_loop.py"),
                              "--port", str(port), "--count", "5", "--timeout", "20"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import time
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
