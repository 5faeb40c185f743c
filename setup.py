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
    # dataset manifests (every file's size and git blob SHA-1) read by jetseg data download
    package_data={"jetseg.data": ["*.json.gz"]},
    install_requires=["numpy>=1.13"],
    extras_require={
        # desktop / CI: OpenCV without GUI (no conflict with a system Qt), ONNX Runtime, and
        # PyAV so that recordings are H.264 and survive a crash (see "video")
        "desktop": ["opencv-python-headless>=4.1", "onnxruntime>=1.10",
                    "av>=12; python_version >= '3.8'"],
        # x86 boards and desktops: OpenVINO, the faster CPU engine (--backend auto picks it)
        "openvino": ["openvino>=2023.1"],
        # making models: PyTorch side, graph tools, INT8 calibration
        # (onnxscript: PyTorch's dynamo exporter, the fallback where TorchScript cannot trace)
        "export": ["torch>=1.13", "torchvision>=0.14", "onnx>=1.12", "onnxruntime>=1.16",
                   "opencv-python-headless>=4.1", "onnxscript>=0.2"],
        # MAVLink (--emit mavlink:): pymavlink 2.4.50 dropped Python 3.6 (JetPack 4.6), 2.4.49
        # is the last that runs there; pyserial for serial links (/dev/ttyTHS1,921600)
        "mavlink": ['pymavlink>=2.4.47,<2.4.50; python_version < "3.7"',
                    'pymavlink>=2.4.47; python_version >= "3.7"', "pyserial>=3.4"],
        # tests: the export zoo builds these libraries' nets with random weights; MAVLink;
        # pycocotools so the COCO reader's pycocotools path is tested beside its own;
        # OpenVINO so its backend runs the same tests as ONNX Runtime
        "dev": ["pytest>=6", "vermin>=1.5", "onnx>=1.12", "segmentation-models-pytorch>=0.5",
                "timm>=0.9", "transformers>=4.40", "pycocotools>=2.0",
                "openvino>=2023.1; python_version >= '3.8'",
                'pymavlink>=2.4.47,<2.4.50; python_version < "3.7"',
                'pymavlink>=2.4.47; python_version >= "3.7"', "pyserial>=3.4"],
        # H.264/H.265 recording and RTP on a desktop: PyAV's wheels carry FFmpeg with
        # libx264/libx265. Not on Python 3.6 (JetPack 4.6): a Jetson records through
        # JetPack's OpenCV with GStreamer's hardware encoders instead.
        "video": ["av>=12; python_version >= '3.8'"],
    },
    entry_points={"console_scripts": ["jetseg=jetseg.cli:main",
                                      "jetseg-camera=jetseg.cli.camera:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.6",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
