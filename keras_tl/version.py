"""The keras-tl version: the one place it is written (`setup.py` reads it)."""

__all__ = ["__version__"]

__version__ = "0.4.0"
