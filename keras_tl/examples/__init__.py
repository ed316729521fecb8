"""Bundled sample data, pretrained fixtures and the offline demo.

`datasets` (MNIST-5k, scikit-learn digits in MNIST geometry, few-shot
splits), `text_datasets` (VADER's human-rated sentences) and `pretrained`
(networks that ship inside packages) give the tests, the recipes' `--smoke`
runs and the demo real data and weights without a network. `demo` composes
the public building blocks the way a user's script would; nothing in the
library imports it.
"""

from keras_tl.examples import datasets
from keras_tl.examples import pretrained
from keras_tl.examples import text_datasets

__all__ = ["datasets", "pretrained", "text_datasets"]
