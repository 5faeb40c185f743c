"""The ``data`` subcommand; ``jetseg.cli`` calls ``register``.

    jetseg data download camvid DIR [--jobs 4] [--retries 3] [--timeout 30]
                                    [--base-url URL] [--manifest FILE]

Fetches a dataset file by file from the repository that publishes it, at a pinned commit,
with a progress line, each file checked against its git blob SHA-1; running it again
continues an interrupted download (see jetseg/data/fetch.py).
"""
import sys

from jetseg.errors import JetsegError


def register(sub, common):
    from jetseg.data.manifest import DATASETS
    d = sub.add_parser("data", help="download a dataset (CamVid)",
                       description="Get datasets to train and evaluate on.")
    actions = d.add_subparsers(dest="action", metavar="ACTION")
    known = "; ".join("{}: {}".format(k, v[1]) for k, v in sorted(DATASETS.items()))
    g = actions.add_parser(
        "download", parents=[common], help="download a dataset into a folder",
        description="Download a dataset into DIR (new or empty; or an interrupted download "
                    "of the same data, which continues). Every file is checked against the "
                    "git blob SHA-1 of the pinned commit it comes from; a marker file "
                    "written last (.jetseg-download.json) says the download is complete. "
                    "Datasets: " + known + ".")
    g.add_argument("dataset", choices=sorted(DATASETS), help="dataset to download")
    g.add_argument("dir", metavar="DIR", help="folder to download into")
    g.add_argument("--jobs", type=int, default=4, help="files fetched at once (default 4)")
    g.add_argument("--retries", type=int, default=3,
                   help="tries more per file after an interruption (default 3)")
    g.add_argument("--timeout", type=float, default=30.0,
                   help="seconds without an answer before a try counts as interrupted")
    g.add_argument("--base-url", help="fetch the manifest's files from this URL instead "
                                      "(a mirror; tests)")
    g.add_argument("--manifest", help="a manifest file (.json/.json.gz) instead of the "
                                      "shipped one (a mirror; tests)")
    g.set_defaults(func=cmd_download)
    d.set_defaults(func=cmd_data, debug=False, quiet=False)


def cmd_data(args):
    raise JetsegError("say what to do with data", fix="e.g. jetseg data download camvid "
                                                      "data/camvid")


def cmd_download(args):
    from jetseg.data import download
    if args.jobs < 1 or args.retries < 0 or args.timeout <= 0:
        raise JetsegError("--jobs must be >= 1, --retries >= 0 and --timeout > 0",
                          fix="e.g. --jobs 4 --retries 3 --timeout 30")
    quiet = getattr(args, "quiet", False)
    s = download(args.dataset, args.dir, manifest=args.manifest, base_url=args.base_url,
                 jobs=args.jobs, retries=args.retries, timeout=args.timeout,
                 progress=not quiet)
    if quiet:
        return 0
    out = sys.stdout
    out.write("{}: {} files, {:.1f} MB, complete and verified ({} fetched now) from {} at "
              "commit {}\n".format(s["root"], s["files"], s["bytes"] / 1e6, s["fetched"],
                                   s["url"], s["commit"][:12]))
    if s["dataset"] == "camvid":
        out.write("next: jetseg eval --model engines/camvid.onnx --dataset {} --format camvid "
                  "--split val\n".format(s["root"]))
    return 0
