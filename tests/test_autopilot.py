"""jetseg.autopilot: horizon, smoothing, free space and gates on synthetic class maps."""
import json

import numpy as np
import pytest

from jetseg import JetsegError
from jetseg import autopilot as ap
from tests.helpers.synthetic_horizon import CLUTTER, GROUND, NAMES, OCCLUDER, SKY, grid, make_scene

W, H = 480, 360


def sweep(clutter=(), **kw):
    """(roll errors, pitch errors, confidences) over the accuracy grid (synthetic_horizon.grid)."""
    er, ep, cf = [], [], []
    for i, (roll, pitch) in enumerate(grid()):
        s = make_scene(roll, pitch, W, H, clutter=clutter, seed=i)
        h = ap.estimate_horizon(s.classes, ["Sky"], names=NAMES, **kw)
        er.append(abs(h.roll_deg - roll))
        ep.append(abs(h.pitch - pitch))
        cf.append(h.confidence)
    return np.array(er), np.array(ep), np.array(cf)


# ---- accuracy ---------------------------------------------------------------------------
def test_clean_grid_within_one_degree_and_a_hundredth_of_pitch():
    er, ep, cf = sweep()
    assert len(er) == 25 * 9
    assert er.max() < 1.0, er.max()
    assert ep.max() < 0.01, ep.max()
    assert cf.min() > 0.95


# measured on this grid (seed = grid index), max roll error deg / max pitch error:
#   trees 0.27 / 0.0013, poles 0.24 / 0.0014, noise 0.26 / 0.0015, occlusion 0.34 / 0.0014,
#   all four together 1.13 / 0.033 (median 0.04 / 0.0006)
@pytest.mark.parametrize("clutter,max_roll,max_pitch,med_roll", [
    (("trees",), 0.5, 0.003, 0.05),
    (("poles",), 0.5, 0.003, 0.05),
    (("noise",), 0.5, 0.003, 0.05),
    (("occlusion",), 0.6, 0.003, 0.05),
    (CLUTTER, 2.0, 0.05, 0.1),
])
def test_clutter_does_not_tilt_the_line(clutter, max_roll, max_pitch, med_roll):
    er, ep, cf = sweep(clutter)
    assert er.max() < max_roll, er.max()
    assert ep.max() < max_pitch, ep.max()
    assert np.median(er) < med_roll
    assert np.median(cf) < 1.0 or clutter == ("poles",)     # clutter costs confidence


def test_ignored_occluder_neither_sky_nor_ground():
    er, ep, cf = sweep(("occlusion",), ignore_classes=["Wing"])
    assert er.max() < 0.5 and ep.max() < 0.003
    _, _, cf_ground = sweep(("occlusion",))
    assert cf.mean() > cf_ground.mean()       # ignoring the wing removes the contradiction


def test_steep_and_upside_down_rolls():
    for roll, line in [(80, 80), (-85, -85), (150, -30), (-120, 60), (180, 0)]:
        s = make_scene(roll, 0.05)
        h = ap.estimate_horizon(s.classes, [SKY])
        assert abs(h.roll_deg - line) < 1.0, (roll, h)
        assert h.inverted == (abs(roll) > 90), (roll, h)
        if abs(line) < 80:
            assert abs(h.pitch - 0.05) < 0.01, (roll, h)


# ---- conventions ------------------------------------------------------------------------
def test_right_end_higher_is_positive_roll_and_horizon_above_centre_is_positive_pitch():
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    # built by hand, not by the generator: y = 150 - 0.25 x (rises to the right)
    classes = np.where(ys < 150 - 0.25 * xs, 0, 1).astype(np.uint8)
    h = ap.estimate_horizon(classes, [0])
    assert h.roll_deg > 0
    assert abs(h.roll_deg - np.degrees(np.arctan(0.25))) < 0.2
    y_c = 150 - 0.25 * W / 2           # 90: above the centre row 180
    assert h.pitch > 0 and abs(h.pitch - (H / 2 - y_c) / H) < 0.003
    assert h.y_at(W / 2) == pytest.approx(y_c, abs=1)
    assert h.p0[0] == 0 and h.p1[0] == W and h.p1[1] < h.p0[1]   # right end higher
    # mirrored: right end lower is negative; horizon below the centre is negative pitch
    low = np.where(ys < 250 + 0.25 * xs, 0, 1).astype(np.uint8)
    h2 = ap.estimate_horizon(low, [0])
    assert h2.roll_deg < 0 and h2.pitch < 0
    assert not h.inverted and not h2.inverted


def test_from_angles_round_trips_the_conventions():
    h = ap.Horizon.from_angles(25.0, -0.2, W, H)
    assert h.roll_deg == pytest.approx(25.0) and h.pitch == pytest.approx(-0.2)
    assert h.sky_side(W / 2, 0) and not h.sky_side(W / 2, H - 1)
    d = h.as_dict()
    json.dumps(d)
    assert set(d) >= {"roll_deg", "pitch", "confidence", "reason", "slope", "intercept",
                      "p0", "p1", "inverted"}


def test_scaled_is_the_same_line_in_a_larger_or_stretched_image():
    h = ap.Horizon.from_angles(20.0, 0.1, 320, 240, confidence=0.8)
    same = h.scaled(W, H)                                    # 1.5x both ways
    assert same.roll_deg == pytest.approx(20.0) and same.pitch == pytest.approx(0.1)
    assert same.p0 == pytest.approx((h.p0[0] * 1.5, h.p0[1] * 1.5))
    wide = h.scaled(640, 240)                                # 2x wider: the line flattens
    assert wide.roll_deg == pytest.approx(np.degrees(np.arctan(np.tan(np.radians(20)) / 2)))
    assert wide.pitch == pytest.approx(0.1) and wide.confidence == 0.8
    assert wide.p1 == pytest.approx((h.p1[0] * 2, h.p1[1]))
    assert ap.Horizon(320, 240, reason="no sky").scaled(W, H).reason == "no sky"


def test_class_membership_by_comparison_and_by_table_agree():
    from jetseg.autopilot.classmap import member
    rs = np.random.RandomState(0)
    c = rs.randint(0, 40, (60, 80)).astype(np.uint8)
    for ids in ([3], [0, 7, 39], list(range(0, 40, 2))):      # 20 ids: the lookup table
        want = np.isin(c, ids)
        assert np.array_equal(member(c, ids), want)
        assert np.array_equal(member(c.astype(np.int32), ids), want)


# ---- edge cases -------------------------------------------------------------------------
@pytest.mark.parametrize("fill,word", [(SKY, "no ground"), (GROUND, "no sky")])
def test_all_sky_or_all_ground_gives_confidence_zero_and_a_reason(fill, word):
    h = ap.estimate_horizon(np.full((H, W), fill, np.uint8), ["Sky"], names=NAMES)
    assert h.confidence == 0 and word in h.reason and not h.valid
    json.dumps(h.as_dict())


def test_empty_and_tiny_maps():
    h = ap.estimate_horizon(np.zeros((0, 0), np.uint8), [0])
    assert h.confidence == 0 and "empty" in h.reason
    h = ap.estimate_horizon(np.array([[0, 0], [1, 1]], np.uint8), [0])
    assert 0 <= h.confidence <= 1
    h = ap.estimate_horizon(np.full((H, W), OCCLUDER, np.uint8), [0], ignore_classes=[2])
    assert h.confidence == 0 and "ignored" in h.reason


def test_class_names_that_do_not_exist_raise_with_a_fix():
    s = make_scene(0, 0)
    with pytest.raises(JetsegError) as e:
        ap.estimate_horizon(s.classes, ["Skyy"], names=NAMES)
    assert "Skyy" in str(e.value) and e.value.fix and "Sky" in e.value.fix
    with pytest.raises(JetsegError) as e:
        ap.estimate_horizon(s.classes, ["Sky"])          # a name but no names
    assert "names=" in e.value.fix
    with pytest.raises(JetsegError):
        ap.estimate_horizon(s.classes, [7], names=NAMES)  # id out of range
    with pytest.raises(JetsegError) as e:
        ap.estimate_horizon(s.image, [0])                  # the image, not the class map
    assert "res.classes" in e.value.fix
    with pytest.raises(JetsegError):
        ap.free_space(s.classes, ["Runway"], names=NAMES)


class FakeSegmenter(object):
    classes = NAMES


class FakeResult(object):
    """Quacks like jetseg.Segmentation: classes, segmenter.classes, class_fractions()."""

    def __init__(self, classes):
        self.classes = classes
        self.segmenter = FakeSegmenter()

    def class_fractions(self):
        return ap.class_fractions(self.classes, NAMES)


def test_a_segmentation_brings_its_class_names():
    s = make_scene(10, 0.1)
    h = ap.estimate_horizon(FakeResult(s.classes), sky_classes=["sky"])   # case-insensitive
    assert abs(h.roll_deg - 10) < 0.5 and abs(h.pitch - 0.1) < 0.01
    f = ap.free_space(FakeResult(s.classes), free_classes=["Ground"])
    assert len(f.fractions) == 9


def test_int32_class_maps_work_like_uint8():
    s = make_scene(-20, -0.1)
    a = ap.estimate_horizon(s.classes, [0])
    b = ap.estimate_horizon(s.classes.astype(np.int32), [0])
    assert a.roll_deg == pytest.approx(b.roll_deg) and a.pitch == pytest.approx(b.pitch)


# ---- smoothing --------------------------------------------------------------------------
def test_filter_smooths_noise_and_respects_confidence():
    rs = np.random.RandomState(0)
    hf = ap.HorizonFilter(alpha=0.3, beta=0.0)
    raw, out = [], []
    for _ in range(60):
        r, p = 10 + rs.normal(0, 2), 0.1 + rs.normal(0, 0.02)
        h = ap.Horizon.from_angles(r, p, W, H, confidence=1.0)
        raw.append(r)
        out.append(hf.update(h).roll_deg)
    assert np.std(out[20:]) < 0.6 * np.std(raw[20:])
    assert abs(np.mean(out[20:]) - 10) < 1
    before = hf.roll
    bad = ap.Horizon.from_angles(-40, -0.3, W, H, confidence=0.0, reason="no sky in view")
    o = hf.update(bad)
    assert o.roll_deg == pytest.approx(before) and "coasting" in o.reason
    assert o.confidence < hf.alpha + 1    # decays, stays in range
    json.dumps(o.as_dict())


def test_filter_wraps_roll_at_plus_minus_90():
    hf = ap.HorizonFilter(alpha=0.5, beta=0.0)
    for r in [88, -88, 89, -89, 88, -88]:
        o = hf.update(ap.Horizon.from_angles(r, 0.0, W, H, confidence=1.0))
        assert abs(abs(o.roll_deg) - 89) < 2.5, o.roll_deg     # never swings through 0


def test_filter_tracks_a_steady_turn_with_beta():
    hf = ap.HorizonFilter(alpha=0.5, beta=0.2)
    for k in range(40):
        o = hf.update(ap.Horizon.from_angles(-30 + k, 0.0, W, H, confidence=1.0), t=k * 0.1)
    assert abs(o.roll_deg - 9) < 0.5          # alpha-beta: no lag on a constant rate


def test_filter_waits_for_a_first_usable_horizon():
    hf = ap.HorizonFilter()
    o = hf.update(ap.Horizon(W, H, reason="no sky in view"))
    assert o.confidence == 0 and "no horizon yet" in o.reason
    with pytest.raises(JetsegError):
        ap.HorizonFilter(alpha=0)


def test_filter_predicts_between_measurements_without_changing_its_state():
    hf = ap.HorizonFilter(alpha=0.5, beta=0.2)
    assert hf.predict(0.0, W, H) is None                     # nothing measured yet
    for k in range(40):                                      # 10 degrees a second
        hf.update(ap.Horizon.from_angles(-30 + k, 0.05, W, H, confidence=1.0), t=k * 0.1)
    state = (hf.roll, hf.pitch, hf.roll_rate, hf.pitch_rate, hf.confidence)
    p = hf.predict(3.95, W, H)                               # half a step after the last
    assert p.roll_deg == pytest.approx(hf.roll + 0.5, abs=0.1) and p.reason == "predicted"
    assert p.pitch == pytest.approx(0.05, abs=0.005) and p.valid
    assert (hf.roll, hf.pitch, hf.roll_rate, hf.pitch_rate, hf.confidence) == state
    far = hf.predict(60.0, W, H)                             # rates stop after max_coast
    assert far.roll_deg == pytest.approx(hf.roll + hf.roll_rate * hf.max_coast, abs=0.01)
    assert abs(hf.predict(3.9, W, H).roll_deg - hf.roll) < 1e-9  # at the measurement itself


# ---- free space -------------------------------------------------------------------------
def free_map(obstacle_cols=None):
    """Sky on top, ground (free) below, optional obstacle (class 2) in the given columns."""
    c = np.full((H, W), GROUND, np.uint8)
    c[:H // 3] = SKY
    if obstacle_cols is not None:
        c[H // 4:, obstacle_cols[0]:obstacle_cols[1]] = OCCLUDER
    return c


def test_obstacle_on_the_left_steers_right():
    # obstacle over the left third: straight ahead is still free, keep flying straight
    f = ap.free_space(free_map((0, W // 3)), free_classes=["Ground"], names=NAMES)
    assert f.fractions[:3] == [0, 0, 0] and f.fractions[3:] == [1.0] * 6 and f.sector == 4
    # obstacle over the left half, centre included: turn right, not hugging its edge
    f = ap.free_space(free_map((0, W // 2 + 30)), free_classes=["Ground"], names=NAMES)
    assert f.fractions[4] == 0 and f.fractions[-1] == 1
    assert f.heading_deg > 0 and f.sector >= 6 and not f.blocked
    g = ap.free_space(free_map((W // 2 - 30, W)), free_classes=[GROUND])
    assert g.heading_deg < 0 and g.sector <= 2
    json.dumps(f.as_dict())


def test_all_free_flies_straight_and_all_blocked_says_so():
    f = ap.free_space(free_map(), free_classes=[GROUND], sectors=9)
    assert f.sector == 4 and f.heading_deg == pytest.approx(0) and f.fractions == [1.0] * 9
    b = ap.free_space(free_map((0, W)), free_classes=[GROUND])
    assert b.blocked and "free" in b.reason and max(b.fractions) == 0


def test_free_fractions_bearings_and_reach_on_a_constructed_map():
    c = np.full((100, 90), GROUND, np.uint8)
    c[50:75, 30:60] = OCCLUDER          # middle third blocked in the top half of the band
    f = ap.free_space(c, [GROUND], sectors=3, rows=(0.5, 1.0), hfov_deg=90)
    assert f.fractions == pytest.approx([1.0, 0.5, 1.0])
    assert f.reach == pytest.approx([1.0, 0.5, 1.0])
    # pinhole bearings: sector centres at x = 15, 45, 75 of 90 with f = 45 px
    assert f.sector_deg == pytest.approx([-np.degrees(np.arctan(30 / 45.)), 0,
                                          np.degrees(np.arctan(30 / 45.))])
    assert f.sector in (0, 2)
    # only the bottom quarter: everything free
    assert ap.free_space(c, [GROUND], sectors=3, rows=(0.75, 1.0)).fractions == [1.0] * 3
    with pytest.raises(JetsegError):
        ap.free_space(c, [GROUND], rows=(0.8, 0.2))


def test_default_field_of_view_is_the_pi_camera_v2():
    f = ap.free_space(free_map(), [GROUND], sectors=2)
    edge = ap.bearing_deg(W, W)
    assert float(edge) == pytest.approx(62.2 / 2)
    assert f.hfov_deg == 62.2


# ---- gates ------------------------------------------------------------------------------
def test_pull_up_fires_when_ground_fills_the_view():
    low = make_scene(0, 0.45).classes           # horizon near the top: ~5 % sky
    high = make_scene(0, 0.0).classes
    gate = ap.pull_up(["Sky"])
    assert ap.check_gates(FakeResult(low), [gate]) == ["pull_up"]
    assert ap.check_gates(FakeResult(high), [gate]) == []
    assert ap.check_gates(low, [gate], names=NAMES) == ["pull_up"]
    assert "pull up" in gate.message


def test_gate_thresholds_and_errors():
    fr = {"Sky": 0.2, "Ground": 0.7, "Wing": 0.1}
    assert ap.Gate("ground", ["Ground", "Wing"], above=0.75).check(fr)
    assert not ap.Gate("ground", ["Ground"], above=0.75).check(fr)
    assert ap.Gate("mid", "sky", above=0.1, below=0.3).check(fr)
    assert ap.check_gates(fr, [ap.Gate("a", ["Sky"], below=0.5),
                               ap.Gate("b", ["Sky"], above=0.5)]) == ["a"]
    with pytest.raises(JetsegError) as e:
        ap.Gate("x", ["Water"], above=0.5).check(fr)
    assert "Sky" in e.value.fix
    with pytest.raises(JetsegError):
        ap.Gate("x", ["Sky"])
