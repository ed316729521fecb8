"""Deprecated alias of `keras_tl.distillation`.

The module shared its name with the `keras_tl.recipes.distill` function;
import from `keras_tl.distillation` instead.
"""

import warnings

from keras_tl import distillation
from keras_tl.distillation import *  # noqa: F401,F403 (the old module's names)

__all__ = list(distillation.__all__)

warnings.warn(
    "keras_tl.distill is renamed keras_tl.distillation",
    DeprecationWarning,
    stacklevel=2,
)
