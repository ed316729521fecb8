"""Recipes: end-to-end transfer-learning flows composed of keras-tl blocks."""

from keras_tl.recipes.feature_extraction import feature_extraction
