"""jetseg: semantic segmentation from a model file to a flying drone.

    from jetseg import Segmenter
    seg = Segmenter("net.onnx")
    res = seg.process(frame_bgr)
    res.classes, res.overlay(), res.mask(), res.class_fractions()

The runtime needs numpy, plus OpenCV for images and ONNX Runtime or TensorRT for inference;
it never imports torch.
"""
__version__ = "0.1.0"

from jetseg.errors import JetsegError  # noqa: E402
from jetseg.core.result import Segmentation  # noqa: E402
from jetseg.core.segmenter import Segmenter  # noqa: E402
from jetseg.io.stream import Stream, stream  # noqa: E402

__all__ = ["Segmenter", "Segmentation", "Stream", "stream", "JetsegError", "__version__"]
