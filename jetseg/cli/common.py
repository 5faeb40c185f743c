"""What every jetseg command shares: the model flags, the Segmenter they make, logging, and
the one error runner (a user-fixable error is one line on stderr and exit code 2; ``--debug``
shows the traceback; Ctrl-C finishes what was being written and exits with 130), and the
argument parser every jetseg command uses (an unknown flag gets the closest known one)."""
import argparse
import difflib
import logging
import re
import sys

from jetseg.backends import BACKEND_NAMES
from jetseg.errors import JetsegError, command_line_names, log


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, but its errors name the closest known flag or choice (``--alpah``
    -> "did you mean --alpha?", ``segmnt`` -> "did you mean segment?"), which Python's
    argparse does not do before 3.14. An unknown flag is reported by the (sub)command it was
    given to, with that command's usage. Subcommand parsers made with ``add_subparsers``
    are of this class too."""

    _argv = ()

    def parse_known_args(self, args=None, namespace=None):
        self._argv = list(sys.argv[1:] if args is None else args)
        return super(ArgumentParser, self).parse_known_args(args, namespace)

    def parse_args(self, args=None, namespace=None):
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            self._chosen(ns).error("unrecognized arguments: " + " ".join(extras))
        return ns

    def error(self, message):
        super(ArgumentParser, self).error(message + self._hints(message))

    def _chosen(self, ns):
        """The (sub)command parser that ``ns`` came from: unknown flags belong to it."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                sub = action.choices.get(getattr(ns, action.dest, None) or "")
                if isinstance(sub, ArgumentParser):
                    return sub._chosen(ns)
        return self

    def _hints(self, message):
        """" (did you mean ...?)" for a mistyped choice or for the flags this parser was
        given that it does not know (a unique prefix of a known flag is not unknown)."""
        hints = []          # (suggestion, what was typed)
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:       # choices are quoted before Python 3.12.4, plain after
            choices = [c.strip("'") for c in m.group(2).split(", ")]
            hints += [(c, m.group(1)) for c in difflib.get_close_matches(m.group(1), choices,
                                                                          n=1)]
        known = [o for o in self._option_string_actions if o.startswith("--")]
        for arg in self._argv:
            if arg == "--":
                break
            flag = arg.split("=", 1)[0]
            if flag.startswith("--") and not any(k.startswith(flag) for k in known):
                hints += [(c, flag) for c in difflib.get_close_matches(flag, known, n=1,
                                                                       cutoff=0.7)]
        if not hints:
            return ""
        if len(hints) == 1:
            return " (did you mean {}?)".format(hints[0][0])
        return " (did you mean {}?)".format(", ".join("{} for {}".format(*h) for h in hints))


def add_model_args(p, primary="--model", visualisation=True):
    """The model flags shared by every command that runs a model (segnet.py's names);
    ``--model`` and ``--engine`` are one flag, ``primary`` is the one help shows.
    ``visualisation=False`` leaves out the flags that only shape what is drawn or printed
    (--visualize, --alpha, --legend, --stats) for commands that draw nothing (eval);
    --filter-mode and --ignore-class stay: they change the class map itself. ``"draw"``
    keeps only the two that shape the picture (bench times drawing it, but shows and
    prints nothing)."""
    g = p.add_argument_group("model")
    names = ("--model", "--engine") if primary == "--model" else ("--engine", "--model")
    g.add_argument(*names, dest="model", required=True,
                   help="model file: .onnx (ONNX Runtime, OpenVINO or TensorRT) or "
                        ".engine (TensorRT)")
    g.add_argument("--backend", default="auto", choices=BACKEND_NAMES,
                   help="inference backend (default auto: TensorRT on a Jetson, OpenVINO "
                        "on an x86 CPU where it is installed, else ONNX Runtime; jetseg "
                        "doctor says which and why)")
    g.add_argument("--labels", help="classes.txt (one name a line) for models without metadata")
    g.add_argument("--colors", help="colors.txt ('R G B [A]' a line)")
    g.add_argument("--labels-mismatch-ok", action="store_true",
                   help="accept --labels/--colors files with another count than the model's "
                        "classes: missing names become 'class #N', missing colours are "
                        "generated, extra lines are dropped (default: that is an error)")
    g.add_argument("--mean", help="normalisation mean, 0..1 scale, e.g. 0.485,0.456,0.406")
    g.add_argument("--std", help="normalisation std, 0..1 scale, e.g. 0.229,0.224,0.225")
    g.add_argument("--channel-order", choices=("RGB", "BGR"),
                   help="channel order the network was trained on (default RGB)")
    g.add_argument("--input-blob", help="name of the image input tensor")
    g.add_argument("--output-blob", help="name of the score-map output tensor")
    g.add_argument("--input-size", help="WxH for models with a dynamic input size")
    g.add_argument("--threads", type=int, help="CPU threads for inference (default: every "
                   "physical core; on a machine busy with other work fewer can be faster)")
    g.add_argument("--precision", choices=("fp32", "bf16", "fp16", "int8"),
                   help="arithmetic of the backend: OpenVINO fp32 (default), bf16 (several "
                        "times faster where the CPU has AMX or AVX512-BF16) or fp16; "
                        "TensorRT's engine for an .onnx fp32, fp16 or int8; ONNX Runtime "
                        "runs the graph's own types")
    g.add_argument("--providers", help="ONNX Runtime providers in order, e.g. cuda,cpu "
                                       "(default: tensorrt, cuda, cpu as installed)")
    c = p.add_argument_group("class map")
    c.add_argument("--filter-mode", default=None, choices=("point", "linear", "smooth"),
                   help="point: blocky exact; linear: blended colours (jetson-inference); "
                        "smooth: scores upsampled before argmax (sharp, exact edges); "
                        "default linear, or the mode a frame graph was exported with")
    c.add_argument("--ignore-class", default=None,
                   help="class id or name the argmax never picks (e.g. void)")
    if not visualisation:
        p.set_defaults(visualize="overlay", alpha=None, legend=None, stats=False)
        return
    v = p.add_argument_group("visualisation")
    v.add_argument("--visualize", default="overlay",
                   help="overlay (default), mask, overlay,mask (side by side) or classes "
                        "(class-id PNGs)")
    v.add_argument("--alpha", type=float, default=None,
                   help="overlay opacity 0-255 (default 150; explicit alphas in colors.txt win)")
    if visualisation == "draw":
        p.set_defaults(legend=None, stats=False)
        return
    v.add_argument("--legend", metavar="FILE",
                   help="write a legend picture: every class with its colour when the run "
                        "starts, and with its share of the pixels over the run when it ends")
    v.add_argument("--stats", action="store_true",
                   help="print a line per frame (name, frame number, fps, latency, biggest "
                        "classes; live sources at most one a second) and the class shares "
                        "over the run")


def check_visualize(text):
    """``--visualize``: overlay, mask, overlay,mask or classes, normalised."""
    what = [w.strip() for w in text.split(",") if w.strip()]
    bad = [w for w in what if w not in ("overlay", "mask", "classes")]
    if bad or not what or ("classes" in what and len(what) > 1):
        raise JetsegError("--visualize {!r} is not understood".format(text),
                          fix="use overlay, mask, overlay,mask or classes")
    return ",".join(what)


def segmenter_from_args(args):
    """The Segmenter the model flags ask for (``--visualize`` is checked first: it is cheap)."""
    from jetseg.core.segmenter import Segmenter
    args.visualize = check_visualize(args.visualize)
    return Segmenter(args.model, backend=args.backend, labels=args.labels, colors=args.colors,
                     mean=args.mean, std=args.std, channel_order=args.channel_order,
                     input_blob=args.input_blob, output_blob=args.output_blob,
                     input_size=args.input_size, alpha=args.alpha, filter_mode=args.filter_mode,
                     ignore_class=args.ignore_class, threads=args.threads,
                     providers=args.providers, labels_mismatch_ok=args.labels_mismatch_ok,
                     precision=args.precision)


def format_shares(fractions, limit=6):
    """``{name: share}`` -> "road 41.2%, sky 30.0%, ...": the biggest ``limit`` non-zero."""
    top = sorted(fractions.items(), key=lambda kv: -kv[1])[:limit]
    return ", ".join("{} {:.1f}%".format(name, 100.0 * f) for name, f in top if f > 0)


def setup_logging(debug=False, quiet=False, prog="jetseg"):
    level = logging.DEBUG if debug else (logging.WARNING if quiet else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(prog + ": %(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def run_guarded(parser, func, argv, prog="jetseg"):
    """Parse, run, and turn user-fixable errors into one line + exit code 2; the messages
    name options as this command's flags (jetseg.errors.option)."""
    args = parser.parse_args(argv)
    saved = (list(log.handlers), log.level, log.propagate)
    setup_logging(getattr(args, "debug", False), getattr(args, "quiet", False), prog)
    try:
        with command_line_names():
            return func(args)
    except JetsegError as e:
        if args.debug:
            raise
        sys.stderr.write("{}: error: {}\n".format(prog, e))
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("{}: interrupted; outputs written so far are complete\n".format(prog))
        return 130
    finally:        # called from Python (tests, scripts): leave logging as it was
        log.handlers[:], log.propagate = saved[0], saved[2]
        log.setLevel(saved[1])          # setLevel, not .level: it clears logging's cache
