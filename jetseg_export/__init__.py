"""jetseg's desktop side: composing graphs, exporting PyTorch models, quantizing.

Installed as ``jetseg_export``. ``compose`` needs only onnx; the PyTorch parts need torch
(``pip install 'jetseg[export]'``) and import it lazily.
"""
