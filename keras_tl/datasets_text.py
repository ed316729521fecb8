"""Deprecated alias of `keras_tl.examples.text_datasets`, where this module moved in keras-tl 0.4.

Rooms are named for what they hold; import from `keras_tl.examples.text_datasets`. This
alias will be removed in keras-tl 0.5.
"""

import warnings

from keras_tl.examples.text_datasets import *  # noqa: F401,F403 (the old module's names)
from keras_tl.examples.text_datasets import __all__  # noqa: F401

warnings.warn(
    "keras_tl.datasets_text moved to keras_tl.examples.text_datasets",
    DeprecationWarning,
    stacklevel=2,
)
