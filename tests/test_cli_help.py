"""``--help`` and mistyped command lines: every flag says what it does (and its default), a
command shows only the flags it uses, and a typo is answered with the closest known flag,
subcommand or choice (Python's argparse does not do that before 3.14)."""
import argparse

import pytest

from tests.helpers.common import run_cli
from jetseg.cli import build_parser
from jetseg.cli.common import ArgumentParser

# jetseg-camera is checked by its own test below; export and train live in jetseg_export
CHECKED = ("segment", "bench", "info", "eval", "build", "doctor")


def _subparsers():
    p = build_parser()
    sub = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)][0]
    return sub.choices


def _last_line(r):
    return r.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("command", CHECKED)
def test_every_flag_has_help_and_names_its_default(command):
    sp = _subparsers()[command]
    assert sp.description and len(sp.description) > 40, command
    for a in sp._actions:
        assert a.help, "{} {}: no help text".format(command, a.option_strings or a.dest)
        if a.nargs != 0 and a.default not in (None, False, argparse.SUPPRESS):
            assert "default" in a.help, "{} {}: default {!r} not shown".format(
                command, a.option_strings or a.dest, a.default)


def test_eval_lists_no_flags_that_only_draw():
    flags = set(_subparsers()["eval"]._option_string_actions)
    assert not flags & {"--visualize", "--alpha", "--legend", "--stats"}
    assert {"--filter-mode", "--ignore-class", "--model"} <= flags    # these change classes
    r = run_cli("eval", "--help")
    assert r.returncode == 0 and "visualisation" not in r.stdout and "--filter-mode" in r.stdout


def test_bench_lists_only_flags_that_change_what_it_times():
    flags = set(_subparsers()["bench"]._option_string_actions)
    assert not flags & {"--legend", "--stats"}          # it shows and prints no picture
    assert {"--visualize", "--alpha", "--frames", "--repeats", "--soak", "--threads",
            "--backend"} <= flags
    r = run_cli("bench", "--help")          # the defaults as help prints them: test_bench.py
    assert r.returncode == 0 and "--legend" not in r.stdout and "--stats" not in r.stdout
    assert "default: samples/camvid" in " ".join(r.stdout.split())


@pytest.mark.parametrize("argv, line", [
    (["segment", "--model", "m.onnx", "--alpah", "100", "in.jpg"],
     "jetseg segment: error: unrecognized arguments: --alpah (did you mean --alpha?)"),
    (["segmnt", "x"], "jetseg: error: argument COMMAND: invalid choice: 'segmnt' (choose from "
     "'segment', 'bench', 'info', 'eval', 'build', 'doctor', 'data', 'export', 'train') "
     "(did you mean segment?)"),
    (["segment", "--mdel", "m.onnx", "in.jpg"], "jetseg segment: error: the following "
     "arguments are required: --model/--engine (did you mean --model?)"),
    (["eval", "--model", "m.onnx", "--dataset", "d", "--visualize", "mask", "--lmit", "3"],
     "jetseg eval: error: unrecognized arguments: --visualize mask --lmit 3 "
     "(did you mean --limit?)"),
    (["info", "m.onnx", "--backnd", "onnxruntime", "--degub"], "jetseg info: error: "
     "unrecognized arguments: --backnd onnxruntime --degub (did you mean --backend for "
     "--backnd, --debug for --degub?)"),
])
def test_typos_get_the_closest_known_name(argv, line):
    r = run_cli(*argv)
    assert r.returncode == 2 and _last_line(r) == line, r.stderr
    assert r.stderr.startswith("usage: jetseg")     # the usage of the command it was given to
    assert r.stderr.split()[2] == (argv[0] if line.startswith("jetseg " + argv[0]) else "[-h]")


def test_a_wrong_choice_names_the_closest(tmp_path):
    r = run_cli("segment", "--model", "m.onnx", "--backend", "onnxrutime", "in.jpg")
    assert r.returncode == 2 and _last_line(r).endswith("(did you mean onnxruntime?)"), r.stderr


def test_abbreviations_argparse_accepts_are_not_called_unknown():
    p = ArgumentParser(prog="t")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--out", required=True)
    assert p.parse_args(["--epoch", "3", "--out", "x"]).epochs == 3
    assert p._hints("the following arguments are required: --out") == ""
    p._argv = ["--epoch", "3", "--ouput", "x"]
    assert p._hints("") == " (did you mean --out?)"
    p._argv = ["--zzz"]                     # nothing close: no guess
    assert p._hints("") == ""


@pytest.mark.parametrize("argv, line_end", [
    (["export", "--chekpoint", "x.pth", "-o", "y.onnx"], "(did you mean --checkpoint?)"),
    (["train", "--arch", "unet", "--dataset", "d", "-o", "r", "--epoks", "3"],
     "(did you mean --epochs?)"),
])
def test_export_and_train_suggest_too(argv, line_end):
    pytest.importorskip("jetseg_export.cli")
    r = run_cli(*argv)
    assert r.returncode == 2 and _last_line(r).endswith(line_end), r.stderr
    assert _last_line(r).startswith("jetseg {}: error: unrecognized arguments: ".format(argv[0]))


def test_camera_flags_all_have_help_and_typos_get_a_suggestion(capsys):
    from jetseg.cli.camera import build_parser as camera_parser
    p = camera_parser()
    for a in p._actions:
        assert a.help, "jetseg-camera {}: no help text".format(a.option_strings or a.dest)
    with pytest.raises(SystemExit):
        p.parse_args(["--engine", "m.onnx", "--input-widht", "640"])
    assert "(did you mean --input-width?)" in capsys.readouterr().err
