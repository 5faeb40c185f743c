"""``jetseg`` command line: one console script, one module per subcommand.

Each command module has ``register(subparsers, common_parent)`` and a ``cmd_*`` handler that
raises JetsegError for anything a user can fix; ``jetseg.cli.common.run_guarded`` turns that
into one line on stderr and exit code 2 (``--debug`` shows the traceback).
"""
import argparse
import importlib
import sys

from jetseg.cli.common import ArgumentParser, run_guarded

# Runtime commands, each a module of this package.
COMMANDS = ("segment", "bench", "info", "eval", "build", "doctor", "data")

# Desktop commands that live in jetseg_export (they need torch / onnx): the runtime only
# forwards to them, so a Jetson without torch still runs everything else.
DELEGATED = {
    "export": ("jetseg_export.cli", "PyTorch model -> ONNX with pre/post-processing"),
    "train": ("jetseg_export.train", "train a segmentation net on a labelled dataset"),
}


def build_parser():
    from jetseg import __version__
    p = ArgumentParser(prog="jetseg", description="Semantic segmentation for drones "
                                "and robots: export, build, run.")
    p.add_argument("--version", action="version", version="jetseg " + __version__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and details")
    common.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module("jetseg.cli." + name).register(sub, common)
    for name, (_, text) in sorted(DELEGATED.items()):
        sub.add_parser(name, help=text + " (needs the export extra)")
    return p


def _delegate(command, argv):
    module_name = DELEGATED[command][0]
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        sys.stderr.write("jetseg: error: 'jetseg {}' needs the export tools ({}) (fix: pip "
                         "install 'jetseg[export]' on a desktop; Jetsons run exported models "
                         "only)\n".format(command, e))
        return 2
    return module.main(argv, prog="jetseg " + command)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        return _delegate(argv[0], argv[1:])
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 2
    return run_guarded(parser, lambda args: args.func(args), argv)
