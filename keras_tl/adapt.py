"""Deprecated alias of `keras_tl.domain_adaptation`, where this module moved in keras-tl 0.4.

Rooms are named for what they hold; import from `keras_tl.domain_adaptation`. This
alias will be removed in keras-tl 0.5.
"""

import warnings

from keras_tl.domain_adaptation import *  # noqa: F401,F403 (the old module's names)
from keras_tl.domain_adaptation import __all__  # noqa: F401

warnings.warn(
    "keras_tl.adapt moved to keras_tl.domain_adaptation",
    DeprecationWarning,
    stacklevel=2,
)
