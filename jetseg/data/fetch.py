"""Download a dataset's files into a folder, checked file by file (``jetseg data download``).

Per file, not one archive: GitHub serves each file of a pinned commit raw (with Range
support) while its archives are made on the fly (no stable checksum, no resuming) and hold
the whole repository. So every file is fetched to ``NAME.part``, continued from where it
stopped with ``Range: bytes=N-`` (from the start when a server ignores Range), checked
against the manifest's size and git blob SHA-1 and only then renamed into place. A re-run
skips the files that verify. ``STATE_FILE`` says "partial" before the first byte and
"complete" after the last file (written last, after a sync), so an interrupted download is
never taken for a finished one, and a folder that holds anything else is refused.
"""
import json
import os
import shutil
import socket
import ssl
import threading
import time
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from jetseg.data import STATE_FILE, download_state
from jetseg.data.manifest import blob_sha1, load_manifest
from jetseg.errors import JetsegError, log
from jetseg.files import write_atomic
from jetseg.progress import Progress

CHUNK = 1 << 16
RETRY_CODES = (408, 429, 500, 502, 503, 504)


class Interrupted(Exception):
    """The transfer stopped early; what arrived is kept in the .part file."""


class Stopped(Exception):
    """Another file failed or Ctrl-C: stop between chunks."""


def download(dataset, root, manifest=None, base_url=None, jobs=4, retries=3, timeout=30.0,
             progress=True):
    """Fetch ``dataset`` (``"camvid"``, or whatever ``manifest`` names) into ``root``.
    Returns a summary dict (dataset, title, commit, root, files, fetched, bytes, url)."""
    m = load_manifest(manifest or dataset)
    if m["dataset"] != dataset:
        raise JetsegError("the manifest is for {!r}, not {!r}".format(m["dataset"], dataset),
                          path=manifest, fix="give the manifest of " + dataset)
    root = str(root)
    base = (base_url or m["url"]).rstrip("/") + "/"
    state = _check_folder(root, m)
    todo, kept = _plan(root, m["files"], progress)
    summary = {"dataset": m["dataset"], "title": m["title"], "commit": m["commit"],
               "root": root, "files": len(m["files"]), "fetched": len(todo),
               "bytes": sum(f[1] for f in m["files"]), "url": base}
    if todo:
        _write_state(root, m, complete=False)
        _check_space(root, sum(f[1] for f in todo) - kept)
        total = sum(f[1] for f in todo)
        mb = total >= 10 ** 7
        bar = Progress(total // (10 ** 6 if mb else 10 ** 3), "download " + m["dataset"],
                       unit="MB" if mb else "kB", enabled=progress, every=10)
        counter = _Counter(bar, 10 ** 6 if mb else 10 ** 3, kept)
        try:
            _run_pool(todo, max(1, int(jobs)), lambda f, stop: fetch_file(
                base + f[0], _local(root, f), f[1], f[2], stop, counter.add, retries,
                timeout))
        except BaseException:
            if getattr(bar.stream, "isatty", lambda: False)():
                bar.close()             # end the redrawn line; a log gets the error alone
            raise
        bar.close()
    if todo or not (state or {}).get("complete"):
        if hasattr(os, "sync"):
            os.sync()                   # the files reach the disk before the marker does
        _write_state(root, m, complete=True)
    return summary


def fetch_file(url, dest, size, sha1, stop=None, on_bytes=None, retries=3, timeout=30.0):
    """``url`` -> ``dest`` through ``dest.part``, continued after an interruption (up to
    ``retries`` more attempts, then a JetsegError that keeps the .part for the next run),
    verified against ``size`` and the git blob ``sha1`` before the rename."""
    stop = stop or threading.Event()
    on_bytes = on_bytes or (lambda n: None)
    part = dest + ".part"
    d = os.path.dirname(dest)
    if not os.path.isdir(d):
        os.makedirs(d, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, size, stop, on_bytes, timeout)
            break
        except Interrupted as e:
            if attempt == retries:
                kept = os.path.getsize(part) if os.path.exists(part) else 0
                raise JetsegError("download interrupted ({} {}): {}".format(
                    attempt + 1, "try" if attempt == 0 else "tries", e), path=dest,
                    fix="run the same command again: it continues from the {} bytes kept "
                        "in {}".format(kept, os.path.basename(part)))
            log.debug("%s: %s; trying again", url, e)
            time.sleep(min(attempt, 5))         # the first retry at once
    got = blob_sha1(part)
    if got != sha1:
        os.unlink(part)
        on_bytes(-size)
        raise JetsegError("checksum mismatch: git blob SHA-1 {} where the manifest says {} "
                          "(the file is deleted)".format(got, sha1), path=dest,
                          fix="run the same command again to fetch it again; if it repeats, "
                              "{} does not serve the pinned commit's files (a proxy or a "
                              "changed mirror): pass --base-url of a faithful copy".format(
                                  _host(url)))
    os.replace(part, dest)


def _fetch_once(url, part, size, stop, on_bytes, timeout):
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if have > size:                     # not counted as progress (see _plan)
        os.unlink(part)
        have = 0
    if have == size:
        return
    req = Request(url, headers={"User-Agent": "jetseg-data/1"})
    if have:
        req.add_header("Range", "bytes={}-".format(have))
    try:
        resp = urlopen(req, timeout=timeout)
    except HTTPError as e:
        if e.code == 416:               # the range is wrong for this file: start over
            os.unlink(part)
            on_bytes(-have)
            raise Interrupted("the server refused to continue at byte {}".format(have))
        if e.code in RETRY_CODES:
            raise Interrupted("HTTP {} {}".format(e.code, e.reason))
        raise JetsegError("HTTP {} {} for {}".format(e.code, e.reason, url),
                          fix="the server does not have the pinned commit's file; if you "
                              "passed --base-url, it must serve the manifest's paths under it")
    except URLError as e:
        if isinstance(e.reason, (socket.timeout, ConnectionResetError, ConnectionAbortedError)):
            raise Interrupted(str(e.reason) or type(e.reason).__name__)
        raise _offline(url, e.reason)
    except (OSError, HTTPException) as e:       # dropped before the headers, timeout
        raise Interrupted(str(e) or type(e).__name__)
    with resp:
        resumed = bool(have) and resp.getcode() == 206 and (
            resp.headers.get("Content-Range") or "").startswith("bytes {}-".format(have))
        if have and not resumed:        # the server ignored Range: from the start
            on_bytes(-have)
            have = 0
        try:
            f = open(part, "ab" if resumed else "wb")
        except (IOError, OSError) as e:
            raise _cannot_write(part, e)
        with f:
            done = _copy(resp, f, have, size, stop, on_bytes, part)
    if done < size:
        raise Interrupted("the connection closed after {} of {} bytes".format(done, size))


def _copy(resp, f, done, size, stop, on_bytes, part):
    """Response body -> file until the end (or past ``size``); returns the file's size."""
    while done <= size:
        if stop.is_set():
            raise Stopped()
        try:
            chunk = resp.read(CHUNK)
        except (OSError, HTTPException) as e:       # reset, timeout, TLS, short read
            raise Interrupted("{} after {} of {} bytes".format(
                str(e) or type(e).__name__, done, size))
        if not chunk:
            break
        try:
            f.write(chunk)
        except (IOError, OSError) as e:
            raise _cannot_write(part, e)
        done += len(chunk)
        on_bytes(len(chunk))
    return done


def _cannot_write(path, e):
    return JetsegError("cannot write: {}".format(e.strerror or e), path=path,
                       fix="check free space and permissions of the folder")


def _offline(url, reason):
    fix = "check the network connection (a proxy goes in https_proxy)"
    if isinstance(reason, ssl.SSLError):
        fix = "check the system clock (date; a Jetson without network time starts in the " \
              "past) and the CA certificates (apt-get install ca-certificates)"
    return JetsegError("cannot reach {}: {}".format(_host(url), getattr(
        reason, "strerror", None) or reason), fix=fix + ", then run the same command "
        "again: it keeps what it already has")


def _host(url):
    return urlsplit(url).netloc or url


def _check_folder(root, m):
    """``root``'s download state (None for a new or empty folder), or a JetsegError when it
    holds anything else."""
    if os.path.exists(root) and not os.path.isdir(root):
        raise JetsegError("not a folder", path=root, fix="give a new or empty folder")
    if not os.path.isdir(root) or not os.listdir(root):
        return None
    state = download_state(root)
    if state is None:
        raise JetsegError("folder is not empty and holds no jetseg download", path=root,
                          fix="give a new or empty folder, e.g. {}".format(
                              os.path.join(root, m["dataset"])))
    if (state.get("dataset"), state.get("commit")) != (m["dataset"], m["commit"]):
        raise JetsegError("folder holds a download of {} at commit {}, not {} at {}".format(
            state.get("dataset"), str(state.get("commit"))[:12], m["dataset"],
            m["commit"][:12]), path=root,
            fix="give another folder, or delete this one to download again")
    return state


def _plan(root, files, progress):
    """(files still to fetch, bytes already in their .part files): a file that is there
    with the manifest's size and checksum stays."""
    todo, kept, have = [], 0, [f for f in files if os.path.isfile(_local(root, f))]
    checked, seen = set(), 0
    with Progress(sum(f[1] for f in have) // 10 ** 6, "verify", unit="MB",
                  enabled=progress and bool(have), every=10) as bar:
        for f in have:
            path = _local(root, f)
            if os.path.getsize(path) == f[1] and blob_sha1(path) == f[2]:
                checked.add(f[0])
            seen += f[1]
            bar.set(seen // 10 ** 6)
    for f in files:
        if f[0] in checked:
            continue
        todo.append(f)
        part = _local(root, f) + ".part"
        size = os.path.getsize(part) if os.path.isfile(part) else 0
        kept += size if size <= f[1] else 0
    return todo, kept


def _local(root, f):
    return os.path.join(root, *f[0].split("/"))


def _write_state(root, m, complete):
    state = {"dataset": m["dataset"], "title": m["title"], "commit": m["commit"],
             "repository": m.get("repository"), "files": len(m["files"]),
             "bytes": sum(f[1] for f in m["files"]), "complete": bool(complete)}
    write_atomic(os.path.join(root, STATE_FILE),
                 (json.dumps(state, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def _check_space(root, need):
    try:
        free = shutil.disk_usage(root).free
    except (AttributeError, OSError):
        return
    if free < need + (32 << 20):
        raise JetsegError("the download needs {:.0f} MB more but the disk has {:.0f} MB "
                          "free".format(need / 1e6, free / 1e6), path=root,
                          fix="free some space or choose a folder on a bigger disk")


class _Counter(object):
    """Bytes from every worker thread -> one progress bar (under a lock)."""

    def __init__(self, bar, unit, start=0):
        self.bar, self.unit, self.bytes = bar, unit, start
        self.lock = threading.Lock()

    def add(self, n):
        with self.lock:
            self.bytes += n
            self.bar.set(self.bytes // self.unit)


def _run_pool(items, jobs, work):
    """``work(item, stop)`` for every item on ``jobs`` threads; the first error stops the
    others between chunks and is raised; Ctrl-C waits for them to stop, then re-raises."""
    stop = threading.Event()
    pending = list(reversed(items))
    errors = []
    lock = threading.Lock()

    def worker():
        while not stop.is_set():
            with lock:
                if not pending:
                    return
                item = pending.pop()
            try:
                work(item, stop)
            except Stopped:
                return
            except BaseException as e:      # noqa: B902 (handed to the main thread)
                errors.append(e)
                stop.set()
                return

    threads = [threading.Thread(target=worker, name="download-{}".format(i))
               for i in range(min(jobs, len(items)))]
    for t in threads:
        t.daemon = True
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        for t in threads:
            t.join()
        raise
    if errors:
        raise errors[0]
