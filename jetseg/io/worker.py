"""A thread behind a bounded queue, so that encoding, fsync and the network never hold the
camera loop: video outputs hand their frames to one of these.

    w = Worker(open_fn, "out.mp4", lossless=True)     # a file source: wait, lose nothing
    w.put(frame, t)                                    # a live one: drop the oldest when full
    w.close()

``open_fn(frame)`` makes the writer on the first frame (its size is known then) in the
worker's thread; the writer has ``write(frame, t)`` and ``close()``. After a writer error
the writer is closed at once (what it wrote stays playable) and the error is raised by the
next ``put()`` or by ``close()``; the Pipeline reports it.
"""
import threading

import queue

from jetseg.errors import JetsegError, log

_END = object()


def put_waiting(q, item, thread):
    """Put, waiting while the queue is full, as long as ``thread`` (its reader) lives.
    Returns False when the reader is gone and the item was not put."""
    while thread.is_alive():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
    return False


def put_latest(q, item):
    """Put without blocking: when full, drop the oldest item. Returns True if one was dropped."""
    dropped = False
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped = True
            except queue.Empty:
                pass


class Worker(object):
    def __init__(self, open_fn, name, lossless=True, size=8):
        self.open_fn = open_fn
        self.name = name
        self.lossless = lossless
        self.q = queue.Queue(maxsize=size)
        self.writer = None
        self.error = None
        self.reported = False
        self.dropped = 0
        self.written = 0
        self.thread = threading.Thread(target=self._run, name="jetseg-out " + str(name))
        self.thread.daemon = True
        self.thread.start()

    def put(self, frame, t):
        self._raise()
        item = (frame, t)
        if self.lossless:
            if not put_waiting(self.q, item, self.thread):
                self._raise()
            return
        if put_latest(self.q, item):
            self.dropped += 1

    def _raise(self):
        if self.error is not None and not self.reported:
            self.reported = True
            raise self.error

    def _run(self):
        try:
            while True:
                item = self.q.get()
                if item is _END:
                    break
                frame, t = item
                if self.writer is None:
                    self.writer = self.open_fn(frame)
                self.writer.write(frame, t)
                self.written += 1
        except Exception as e:
            self._fail(e, "writing failed")
        self._finish()              # at once after an error: what is written stays playable
        if self.error is not None:
            while self.q.get() is not _END:     # let put() and close() go on
                pass

    def _fail(self, e, what):
        if self.error is None:
            self.error = e if isinstance(e, JetsegError) else JetsegError(
                "{}: {}".format(what, e), path=self.name)
            log.debug("%s: %s", self.name, self.error)
        else:
            log.debug("%s: %s after an error: %s", self.name, what, e)

    def _finish(self):
        writer, self.writer = self.writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception as e:
                self._fail(e, "finishing failed")

    def close(self):
        """Finish: every queued frame written (lossless) and the writer closed."""
        while self.thread.is_alive():
            try:
                self.q.put(_END, timeout=0.1)
                break
            except queue.Full:
                if not self.lossless:
                    try:
                        self.q.get_nowait()
                    except queue.Empty:
                        pass
        self.thread.join()
        self._raise()
