"""The model side of the runtime: what a model file says about itself (modelinfo), class
names and colours (labels), the CPU pre/post path for graphs that lack it (processing), the
Segmenter that runs a frame through a backend, and the Segmentation it returns (result).
``from jetseg import Segmenter`` is the public way in."""
