"""A tiny progress bar on stderr (no tqdm needed), for eval, train, export and calibration.

    with Progress(len(files), "parity") as bar:
        for f in files:
            ...
            bar.advance()               # one more done (advance(n): n more)
    bar.set(i + 1)                      # or: this many done so far

On a terminal it redraws one line (at most ten times a second); elsewhere (CI logs,
pipes) it prints a line every ``every`` seconds (default: only the finished line).
``Progress.enabled = False`` silences every bar (``--quiet``); ``enabled=False`` one bar.

    epoch 1/3      [############............] 6/12 batch  3.1 batch/s  0:00:02 ETA 0:00:02
"""
import sys
import time


def _hms(s):
    s = int(round(max(0.0, s)))
    return "{}:{:02d}:{:02d}".format(s // 3600, s // 60 % 60, s % 60)


class Progress(object):
    enabled = True          # class-wide switch (--quiet)
    width = 24

    def __init__(self, total, label, stream=None, unit="img", enabled=True, every=None):
        self.total = max(0, int(total or 0))
        self.label = label
        self.stream = stream or sys.stderr
        self.unit = unit
        self.show = bool(enabled and Progress.enabled and type(self).enabled)
        self.every = every
        self.done = 0
        self.start = time.perf_counter()
        self._last = self.start
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._closed = False
        if self._tty:
            self._draw(force=True)

    def advance(self, n=1):
        """``n`` more items done."""
        self.set(self.done + n)

    def set(self, done):
        """``done`` items done so far (absolute)."""
        self.done = min(self.total, int(done)) if self.total else int(done)
        self._draw()

    def line(self):
        elapsed = time.perf_counter() - self.start
        if not self.total:
            return "{:<14} {} {} {}".format(self.label, self.done, self.unit, _hms(elapsed))
        frac = float(self.done) / self.total
        fill = int(round(frac * self.width))
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        return "{:<14} [{}] {:>{w}}/{} {} {:6.1f} {}  {} ETA {}".format(
            self.label, "#" * fill + "." * (self.width - fill), self.done, self.total,
            self.unit, rate, "fps" if self.unit == "img" else self.unit + "/s",
            _hms(elapsed), _hms(eta), w=len(str(self.total)))

    def _draw(self, force=False):
        if not self.show or self._closed:
            return
        now = time.perf_counter()
        if self._tty:
            if force or now - self._last >= 0.1 or self.done >= self.total:
                self._last = now
                self.stream.write("\r" + self.line() + "\033[K")
                self.stream.flush()
        elif self.every and now - self._last >= self.every and self.done < self.total:
            self._last = now
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def close(self):
        """Write the final line (once)."""
        if self._closed:
            return
        self._closed = True
        if not self.show:
            return
        self.stream.write(("\r" + self.line() + "\033[K\n") if self._tty else self.line() + "\n")
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
