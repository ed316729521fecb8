"""Recipes: end-to-end transfer-learning flows composed of keras-tl blocks."""

from keras_tl.recipes.domain_adaptation import adapt_domain
from keras_tl.recipes.distillation import distill
from keras_tl.recipes.frozen_backbone import feature_extraction
from keras_tl.recipes.fine_tuning import fine_tune
from keras_tl.recipes.text_classification import text_classifier

__all__ = [
    "adapt_domain",
    "distill",
    "feature_extraction",
    "fine_tune",
    "text_classifier",
]
