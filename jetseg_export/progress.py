"""The export tools' progress bars are ``jetseg.progress.Progress`` (one helper for the
runtime and the desktop tools). ``update(n=1)`` is kept for code written against this
module, where it always meant "n more done": it is ``advance``; new code calls ``advance``
or ``set``. ``Progress.enabled = False`` here silences the export tools' bars."""
from jetseg.progress import Progress as _Progress


class Progress(_Progress):
    def update(self, n=1):
        self.advance(n)
