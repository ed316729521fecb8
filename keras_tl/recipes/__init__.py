"""Recipes: end-to-end transfer-learning flows composed of keras-tl blocks."""

from keras_tl.recipes.adapt import adapt_domain
from keras_tl.recipes.distill import distill
from keras_tl.recipes.feature_extraction import feature_extraction
from keras_tl.recipes.fine_tune import fine_tune
from keras_tl.recipes.text_classifier import text_classifier

__all__ = [
    "adapt_domain",
    "distill",
    "feature_extraction",
    "fine_tune",
    "text_classifier",
]
