"""Keras' own distillation test suites, run against `keras_tl.Distiller`.

The modules ship inside the installed keras package; they are imported
from there (not copied) and their `Distiller` is replaced by keras-tl's,
so every test of `keras.distillation.Distiller` runs on the drop-in.
"""

import pytest

import keras_tl

distiller_test = pytest.importorskip("keras.src.distillation.distiller_test")
distillation_loss_test = pytest.importorskip("keras.src.distillation.distillation_loss_test")

for _module in (distiller_test, distillation_loss_test):
    _module.Distiller = keras_tl.Distiller

TestKerasDistiller = distiller_test.TestDistiller
TestKerasLogitsDistillation = distillation_loss_test.TestLogitsDistillation
TestKerasFeatureDistillation = distillation_loss_test.TestFeatureDistillation
TestKerasEndToEndDistillation = distillation_loss_test.TestEndToEndDistillation


def test_the_suites_run_on_keras_tl_distiller():
    assert distiller_test.Distiller is keras_tl.Distiller
    assert distillation_loss_test.Distiller is keras_tl.Distiller
