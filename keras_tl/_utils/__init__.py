"""Private helpers shared by keras-tl's modules; not part of the public API."""

__all__ = []
