import logging

import pytest

from jetseg import JetsegError
from jetseg.core.labels import (fit_colors, fit_labels, generated_palette, read_colors, read_labels,
                           resolve_alpha, write_colors, write_labels)


def test_labels_strip_synsets_comments_and_blank_lines(tmp_path):
    p = tmp_path / "classes.txt"
    p.write_text("n01440764 tench\n# a comment\n\nsky\n  road  \nn04037443 racer, race car\n")
    assert read_labels(p) == ["tench", "sky", "road", "racer, race car"]


def test_colors_missing_values_are_255_and_alpha_is_kept(tmp_path):
    p = tmp_path / "colors.txt"
    p.write_text("0 0 0\n128 64\n10,20,30,40\n# comment\n7\n")
    assert read_colors(p) == [(0, 0, 0), (128, 64, 255), (10, 20, 30, 40), (7, 255, 255)]


def test_explicit_alpha_is_exempt_from_alpha_flag():
    assert resolve_alpha([(1, 2, 3), (1, 2, 3, 0), (1, 2, 3, 255)], 150) == [150, 0, 255]


@pytest.mark.parametrize("text", ["1 2 3 4 5", "1 x 3", "1 2 300", "-1 0 0"])
def test_bad_colour_lines_name_the_file_and_line(tmp_path, text):
    p = tmp_path / "colors.txt"
    p.write_text("0 0 0\n" + text + "\n")
    with pytest.raises(JetsegError) as e:
        read_colors(p)
    assert "colors.txt line 2" in str(e.value) and "fix:" in str(e.value)


def test_round_trip_in_jetson_inference_format(tmp_path):
    names = ["void", "sky", "class with spaces"]
    cols = [(0, 0, 0, 0), (70, 130, 180), (1, 2, 3)]
    write_labels(tmp_path / "c.txt", names)
    write_colors(tmp_path / "k.txt", cols)
    assert read_labels(tmp_path / "c.txt") == names
    assert read_colors(tmp_path / "k.txt") == cols
    assert (tmp_path / "k.txt").read_text().splitlines() == ["0 0 0 0", "70 130 180", "1 2 3"]


def test_fewer_labels_warn_and_get_class_numbers(caplog):
    with caplog.at_level(logging.WARNING, logger="jetseg"):
        assert fit_labels(["a", "b"], 4) == ["a", "b", "class #2", "class #3"]
    assert "2 classes but the model outputs 4" in caplog.text


def test_more_labels_than_classes_is_an_error():
    with pytest.raises(JetsegError, match="lists 3 classes but the model outputs 2"):
        fit_labels(["a", "b", "c"], 2, source="classes.txt")


def test_missing_colours_are_generated_distinct():
    cols = fit_colors([(255, 0, 0)], 6)
    assert cols[0] == (255, 0, 0) and len(cols) == 6
    assert len(set(c[:3] for c in cols)) == 6
    with pytest.raises(JetsegError):
        fit_colors([(0, 0, 0)] * 3, 2)


def test_generated_palette_is_voc():
    assert generated_palette(4) == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)]


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(JetsegError, match="cannot read labels"):
        read_labels(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(JetsegError, match="no class names"):
        read_labels(tmp_path / "empty.txt")


def test_class_ids_take_names_any_case_ids_and_digit_strings():
    from jetseg.core.labels import class_ids
    names = ["Sky", "Road", "sky_2"]
    assert class_ids(None, names) == []
    assert class_ids("road", names) == [1]                 # case-insensitive when unambiguous
    assert class_ids(["Sky", 2, "1"], names) == [0, 1, 2]  # "1" from a command line is an id
    import numpy as np
    assert class_ids(np.int64(2), names) == [2]
    assert class_ids([0, 1], None) == [0, 1]               # ids need no names


@pytest.mark.parametrize("spec, names, needles", [
    ("Water", ["Sky", "Road"], ["--ignore-class 'Water' is not a class", "Sky, Road"]),
    (5, ["Sky", "Road"], ["--ignore-class 5 is not a class id (0..1)"]),
    (-1, ["Sky", "Road"], ["--ignore-class -1 is not a class id"]),
    ("Sky", None, ["is a class name but no class names are known"]),
    (1.5, ["Sky", "Road"], ["neither a class name nor a class id"]),
])
def test_class_ids_errors_name_the_class_and_the_valid_ones(spec, names, needles):
    from jetseg.core.labels import class_ids
    with pytest.raises(JetsegError) as e:
        class_ids(spec, names, "--ignore-class")
    for n in needles:
        assert n in str(e.value) and "fix:" in str(e.value)


def test_class_fractions_cover_every_class_in_order():
    from jetseg.core.labels import class_fractions
    assert class_fractions([3, 0, 1], ["a", "b", "c"]) == {"a": 0.75, "b": 0.0, "c": 0.25}
    assert list(class_fractions([0, 0], ["x", "y"]).values()) == [0.0, 0.0]
