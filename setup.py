"""jetseg: semantic segmentation from a trained net to a Jetson on a drone.

Kept to plain setuptools so that JetPack 4.6's pip (Python 3.6) installs it too.
The runtime needs numpy only: OpenCV comes from JetPack on a Jetson (pip's opencv-python
would hide its GStreamer build), from the ``desktop`` extra elsewhere.
"""
import io
import os
import re

from setuptools import find_packages, setup

here = os.path.abspath(os.path.dirname(__file__))
with io.open(os.path.join(here, "jetseg", "__init__.py"), encoding="utf-8") as f:
    version = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)
with io.open(os.path.join(here, "README.md"), encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="jetseg",
    version=version,
    description="Semantic segmentation for drones and robots: export, TensorRT build, "
                "live runtime",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.6",
    packages=find_packages(include=["jetseg", "jetseg.*", "jetseg_export", "jetseg_export.*"]),
    install_requires=["numpy>=1.13"],
    extras_require={
        # desktop / CI: OpenCV without GUI (no conflict with a system Qt) and ONNX Runtime
        "desktop": ["opencv-python-headless>=4.1", "onnxruntime>=1.10"],
        # x86 boards and desktops: OpenVINO, the faster CPU engine (--backend auto picks it)
        "openvino": ["openvino>=2023.1"],
        # making models: PyTorch side, graph tools, INT8 calibration
        "export": ["torch>=1.13", "torchvision>=0.14", "onnx>=1.12", "onnxruntime>=1.16",
                   "opencv-python-headless>=4.1"],
        "dev": ["pytest>=6", "vermin>=1.5", "onnx>=1.12"],
    },
    entry_points={"console_scripts": ["jetseg=jetseg.cli:main",
                                      "jetseg-camera=jetseg.cli.camera:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.6",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
