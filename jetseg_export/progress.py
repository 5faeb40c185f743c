"""A tiny progress bar on stderr (no tqdm needed).

    with Progress(len(files), "parity") as bar:
        for f in files:
            ...
            bar.update()

On a terminal it redraws one line; elsewhere (CI logs, pipes) it prints the finished line
only. ``Progress.enabled = False`` silences every bar (``--quiet``).
"""
import sys
import time


class Progress(object):
    enabled = True
    width = 24

    def __init__(self, total, label, stream=None, unit="img"):
        self.total = max(0, int(total or 0))
        self.label = label
        self.stream = stream or sys.stderr
        self.unit = unit
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._closed = False
        self._draw(force=True)

    def update(self, n=1):
        self.done = min(self.total, self.done + n) if self.total else self.done + n
        self._draw()

    def _line(self):
        elapsed = time.perf_counter() - self.start
        if self.total:
            frac = float(self.done) / self.total
            fill = int(round(frac * self.width))
            bar = "#" * fill + "." * (self.width - fill)
            eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
            return "{:<14} [{}] {}/{} {} {:.1f}s{}".format(
                self.label, bar, self.done, self.total, self.unit, elapsed,
                " (eta {:.0f}s)".format(eta) if self.done < self.total and self.done else "")
        return "{:<14} {} {} {:.1f}s".format(self.label, self.done, self.unit, elapsed)

    def _draw(self, force=False):
        if not self.enabled or not self._tty:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.1 and self.done < self.total:
            return
        self._last = now
        self.stream.write("\r" + self._line() + "\033[K")
        self.stream.flush()

    def close(self):
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        if self._tty:
            self.stream.write("\r" + self._line() + "\033[K\n")
        else:
            self.stream.write(self._line() + "\n")
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
