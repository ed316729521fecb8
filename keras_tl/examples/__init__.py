"""Worked examples on bundled data (the offline demo); not the library's core.

Nothing in `keras_tl` imports this package: it composes the public building
blocks the way a user's script would.
"""

__all__ = []
