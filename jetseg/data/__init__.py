"""Getting datasets: ``jetseg data download camvid DIR``.

    from jetseg.data import download
    download("camvid", "data/camvid")       # CamVid's 11-class split, checked file by file

A dataset is a manifest (``manifest``): every file's path, size and git blob SHA-1 at one
pinned commit of the repository that publishes it, shipped gzipped in this package. The
download (``fetch``) goes file by file, verifies each against the manifest, continues
a cut-off file with an HTTP Range request, and writes ``STATE_FILE`` first (partial) and
last (complete), so a folder is never taken for a finished download when it is not.
"""
import json
import os

STATE_FILE = ".jetseg-download.json"


def download_state(root):
    """The state a download left in ``root`` (``{"complete": bool, "dataset": ...}``), or
    None when ``root`` holds no jetseg download."""
    path = os.path.join(str(root), STATE_FILE)
    try:
        with open(path, "r") as f:
            state = json.load(f)
    except (IOError, OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def download(dataset, root, **options):
    """Fetch ``dataset`` (e.g. "camvid") into ``root``; see ``jetseg.data.fetch``."""
    from jetseg.data.fetch import download as run
    return run(dataset, root, **options)
