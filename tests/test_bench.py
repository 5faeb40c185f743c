"""``jetseg bench`` prints its figures; the goals are reported, never asserted here."""
import re

import cv2
import onnx

from tests.helpers.common import COLORS5, NAMES5, rng_frame, run_cli
from jetseg_export.compose import compose
from tests.helpers.tinymodels import TinyNet


def test_bench_prints_every_figure_with_ratios(tmp_path):
    model = tmp_path / "net.onnx"
    onnx.save(compose(TinyNet(width=64, height=48).onnx(), NAMES5, COLORS5, scores=True),
              str(model))
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(4):
        cv2.imwrite(str(d / "{}.png".format(i)), rng_frame(96, 72, seed=i))
    r = run_cli("bench", "--model", model, d, "--frames", "4", "--repeats", "2", "--soak", "60")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    rows = dict((m.group(1).strip(), m) for m in re.finditer(
        r"^  (model only|full pipeline|naive loop \(numpy\+ORT\))\s+([\d.]+)\s+([\d.]+)\.\.([\d.]+)"
        r"\s+([\d.]+)\s+([\d.]+)x", out, re.M))
    assert set(rows) == {"model only", "full pipeline", "naive loop (numpy+ORT)"}, out
    for m in rows.values():
        fps, lo, hi = float(m.group(2)), float(m.group(3)), float(m.group(4))
        assert lo <= fps <= hi and fps > 0
        assert abs(float(m.group(5)) - 1000.0 / fps) < 0.02 * (1000.0 / fps) + 0.01
    assert float(rows["model only"].group(6)) == 1.0
    rec = re.search(r"^  pipeline \+ H\.264 file\s+([\d.]+)\s+[\d.]+\.\.[\d.]+\s+[\d.]+\s+"
                    r"[\d.]+x  ([\d.]+)x the pipeline without", out, re.M)
    assert rec and float(rec.group(1)) > 0 and float(rec.group(2)) > 0, out
    assert re.search(r"jetseg pipeline is [\d.]+x faster", out)
    assert re.search(r"naive loop \(torch\)\s+(skipped: .+|[\d.]+)", out)
    m = re.search(r"peak RSS ([\d.]+) MB; RSS ([\d.]+) MB after warm-up -> ([\d.]+) MB after "
                  r"(\d+) frames: ([-+][\d.]+)%", out)
    assert m and int(m.group(4)) == 60 and float(m.group(1)) > 10
