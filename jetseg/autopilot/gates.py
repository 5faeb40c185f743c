"""Class-fraction gates: rules on the share of classes in view that name an action.

    check_gates(res, [pull_up(["Sky"])])        # ["pull_up"] when ground fills > 90 %
"""
import numpy as np

from jetseg.autopilot.classmap import unpack
from jetseg.errors import JetsegError


def class_fractions(classes, names=None):
    """{name: share of pixels} from a Segmentation, a class map + names, or a dict as is."""
    if isinstance(classes, dict):
        return classes
    if hasattr(classes, "class_fractions") and hasattr(classes, "segmenter"):
        return classes.class_fractions()
    classes, names = unpack(classes, names)
    if names is None:
        raise JetsegError("class fractions of a bare class map need the class names",
                          fix="pass names=seg.classes or the Segmentation itself")
    n = len(names)
    counts = np.bincount(classes.ravel(), minlength=n)[:n]
    total = float(max(1, classes.size))
    return dict((str(name), c / total) for name, c in zip(names, counts.tolist()))


class Gate(object):
    """A rule on class fractions that names an action when it fires.

        Gate("pull_up", classes=["Sky"], below=0.10)     # sky under 10 %: pull up
        Gate("land_here", classes=["Grass"], above=0.6)
        gate.check(res.class_fractions())                 # True / False

    ``classes`` are names (case-insensitive) whose shares are summed; the gate fires when
    the sum is above ``above``, below ``below``, or, with both given, between them.
    """

    def __init__(self, action, classes, above=None, below=None, message=None):
        if above is None and below is None:
            raise JetsegError("gate {!r} has no threshold".format(action),
                              fix="give above=0.9 and/or below=0.1 (shares of the frame)")
        if isinstance(classes, str):
            classes = [classes]
        self.action = action
        self.classes = list(classes)
        self.above = above
        self.below = below
        self.message = message or self._describe()

    def _describe(self):
        what = "+".join(str(c) for c in self.classes)
        parts = []
        if self.above is not None:
            parts.append("> {:.0f}%".format(100 * self.above))
        if self.below is not None:
            parts.append("< {:.0f}%".format(100 * self.below))
        return "{} {}: {}".format(what, " and ".join(parts), self.action)

    def fraction(self, fractions):
        """Summed share of the gate's classes in ``fractions`` ({name: share})."""
        total = 0.0
        keys = dict((str(k).lower(), k) for k in fractions)
        for c in self.classes:
            key = c if c in fractions else keys.get(str(c).lower())
            if key is None:
                raise JetsegError("gate {!r}: class {!r} is not among the class fractions"
                                  .format(self.action, c),
                                  fix="use one of: " + ", ".join(str(k) for k in fractions))
            total += float(fractions[key])
        return total

    def check(self, fractions):
        f = self.fraction(fractions)
        ok = True
        if self.above is not None:
            ok = ok and f > self.above
        if self.below is not None:
            ok = ok and f < self.below
        return ok

    def __repr__(self):
        return "Gate({!r}: {})".format(self.action, self.message)


def pull_up(sky_classes=("Sky",), ground_share=0.9):
    """Ready rule: the ground (everything but sky) fills more than 90 % of the view."""
    return Gate("pull_up", sky_classes, below=1.0 - ground_share,
                message="ground fills > {:.0f}% of the view: pull up".format(100 * ground_share))


def check_gates(fractions, gates, names=None):
    """The actions of the gates that fire, in the order given.

    fractions   {name: share} (``res.class_fractions()``), a Segmentation, or a class map
                with ``names``
    """
    fr = class_fractions(fractions, names)
    return [g.action for g in gates if g.check(fr)]
