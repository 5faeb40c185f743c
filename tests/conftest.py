"""Fixtures; the shared helpers live in tests/helpers."""
import pytest

from tests.helpers.common import CAMVID, COLORS5, NAMES5
from tests.helpers.tinymodels import TinyNet


@pytest.fixture(scope="session")
def camvid():
    if not (CAMVID / "val").is_dir():
        pytest.skip("CamVid not found at {} (real-data tests read the shared data "
                    "beside the clone: ../shared/datasets/camvid)".format(CAMVID))
    return CAMVID


@pytest.fixture(scope="session")
def camvid_frames(camvid):
    import cv2
    files = sorted((camvid / "val").glob("*.jpg"))[:4]
    return [cv2.imread(str(f)) for f in files]


@pytest.fixture
def tiny(tmp_path):
    """(TinyNet, path of its plain ONNX): 5 classes, 32x24 input, logits at 1/4 resolution."""
    net = TinyNet(num_classes=5, width=32, height=24, down=4)
    return net, net.save(tmp_path / "plain.onnx")


@pytest.fixture
def labels_files(tmp_path):
    lab = tmp_path / "classes.txt"
    lab.write_text("".join(n + "\n" for n in NAMES5))
    col = tmp_path / "colors.txt"
    col.write_text("".join(" ".join(map(str, c)) + "\n" for c in COLORS5))
    return str(lab), str(col)


@pytest.fixture(autouse=True)
def keep_logging():
    """CLI entry points called in-process configure the 'jetseg' logger; undo it after."""
    import logging
    log = logging.getLogger("jetseg")
    saved = (list(log.handlers), log.level, log.propagate)
    yield log
    log.handlers[:] = saved[0]
    log.setLevel(saved[1])          # setLevel, not the attribute: it clears logging's cache
    log.propagate = saved[2]
