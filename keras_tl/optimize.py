"""Deprecated alias of `keras_tl.compression`, where this module moved in keras-tl 0.4.

Rooms are named for what they hold; import from `keras_tl.compression`. This
alias will be removed in keras-tl 0.5.
"""

import warnings

from keras_tl.compression import *  # noqa: F401,F403 (the old module's names)
from keras_tl.compression import __all__  # noqa: F401

warnings.warn(
    "keras_tl.optimize moved to keras_tl.compression",
    DeprecationWarning,
    stacklevel=2,
)
