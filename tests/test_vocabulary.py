"""One vocabulary: every training recipe takes the shared knobs, with one
meaning and one default, and refuses a bad value before any work."""

import inspect

import pytest

from keras_tl._utils.knobs import SHARED_KNOBS
from keras_tl.recipes import adapt_domain
from keras_tl.recipes import distill
from keras_tl.recipes import feature_extraction
from keras_tl.recipes import fine_tune
from keras_tl.recipes import text_classifier

RECIPES = [feature_extraction, fine_tune, text_classifier, distill, adapt_domain]

# The shared defaults; `epochs` is the one knob whose default is the
# recipe's own (how long each kind of training needs), and `None` for
# `learning_rate` and `optimizer` means the recipe's documented choice.
DEFAULTS = {
    "learning_rate": None,
    "batch_size": 32,
    "validation_data": None,
    "callbacks": None,
    "checkpoint_dir": None,
    "seed": 0,
    "verbose": 1,
    "class_weight": None,
    "augmentation": None,
    "schedule": "cosine",
    "optimizer": None,
    "strategy": None,
    "mixed_precision": False,
    "jit_compile": "auto",
}


class Touched(Exception):
    pass


class Untouchable:
    """Stands for a backbone, a teacher or the data: any use raises."""

    def __getattr__(self, name):
        raise Touched(name)

    def __iter__(self):
        raise Touched("__iter__")

    def __len__(self):
        raise Touched("__len__")


def _call(recipe, **knobs):
    sentinel = Untouchable()
    if recipe is text_classifier:
        return recipe(sentinel, preset=sentinel, **knobs)
    if recipe is distill:
        return recipe(sentinel, sentinel, sentinel, **knobs)
    if recipe is adapt_domain:
        return recipe(sentinel, sentinel, sentinel, **knobs)
    return recipe(sentinel, sentinel, **knobs)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.__name__)
def test_every_recipe_takes_the_shared_knobs_with_one_default(recipe):
    parameters = inspect.signature(recipe).parameters
    missing = [knob for knob in SHARED_KNOBS if knob not in parameters]
    assert not missing, f"{recipe.__name__} lacks {missing}"
    for knob, default in DEFAULTS.items():
        assert parameters[knob].default == default, (recipe.__name__, knob)


BAD = [
    ("epochs", -1, "epochs"),
    ("learning_rate", -1.0, "learning_rate"),
    ("learning_rate", float("nan"), "learning_rate"),
    ("batch_size", 0, "batch_size"),
    ("callbacks", "early_stopping", "callbacks"),
    ("seed", "zero", "seed"),
    ("verbose", 7, "verbose"),
    ("class_weight", "inverse", "class_weight"),
    ("class_weight", {0: -1.0}, "class_weight"),
    ("augmentation", "extreme", "augmentation"),
    ("schedule", "zigzag", "schedule"),
    ("optimizer", "nope", "optimizer"),
    ("optimizer", 3, "optimizer"),
    ("strategy", "two_gpus", "strategy"),
    ("mixed_precision", "float8", "mixed"),
    ("jit_compile", "yes", "jit_compile"),
]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.__name__)
@pytest.mark.parametrize("knob,value,named", BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_a_bad_knob_is_refused_before_any_work(recipe, knob, value, named):
    with pytest.raises((ValueError, TypeError), match=named):
        _call(recipe, **{knob: value})


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.__name__)
def test_a_checkpoint_dir_that_is_a_file_is_refused_before_any_work(recipe, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    with pytest.raises(ValueError, match="is a file"):
        _call(recipe, checkpoint_dir=path)
    assert path.read_text() == "mine"


def test_text_has_no_image_augmentation():
    with pytest.raises(ValueError, match="augmentation applies to images"):
        _call(text_classifier, augmentation="light")


@pytest.mark.parametrize("recipe,old,value", [
    (fine_tune, "unfreeze_every", 2),
    (fine_tune, "unfreeze_at", [1]),
    (fine_tune, "unfreeze_patience", 2),
    (text_classifier, "unfreeze_phases", 2),
    (distill, "alpha", 0.3),
], ids=lambda v: getattr(v, "__name__", str(v)))
def test_old_spellings_work_with_a_deprecation_warning(recipe, old, value):
    # The warning comes before the data is read (which then fails on the
    # stand-in).
    with pytest.warns(DeprecationWarning, match=f"{old}.*deprecated"):
        with pytest.raises((Touched, TypeError)):
            _call(recipe, **{old: value})


def test_unfreeze_is_one_specification():
    from keras_tl.engine import unfreeze_rule

    for recipe in (fine_tune, text_classifier):
        assert "unfreeze" in inspect.signature(recipe).parameters
        with pytest.raises(ValueError, match="unfreeze"):
            _call(recipe, unfreeze={"sometimes": 1})
    with pytest.raises(ValueError, match="phases of the fine-tuning steps"):
        _call(text_classifier, unfreeze={"every": 1})
    assert unfreeze_rule(4, 8, 1, unfreeze={"every": 2}) == {"every": 2}


# One skeleton: the training steps every recipe shares live in
# `keras_tl.engine` and `keras_tl.augment`, written once.

RECIPE_MODULES = ["frozen_backbone", "fine_tuning", "text_classification", "distillation",
                  "domain_adaptation"]


@pytest.mark.parametrize("module", RECIPE_MODULES)
def test_recipes_build_no_callback_stack_history_or_augmentation_of_their_own(module):
    import importlib

    source = inspect.getsource(importlib.import_module(f"keras_tl.recipes.{module}"))
    for own in ("StopOnNonFiniteLoss(", "SyncBatchNormStatistics(", "History()",
                "on_epoch_end(0", "augment_dataset(", "one_hot_labels(", ".guard"):
        assert own not in source, f"recipes/{module}.py builds {own!r} itself"


def test_callback_stack_order_claims_guards_then_checkpoint_then_user(tmp_path):
    import keras

    from keras_tl.callbacks import SyncBatchNormStatistics
    from keras_tl.engine import callback_stack
    from keras_tl.finite import StopOnNonFiniteLoss
    from keras_tl.finite import backup_and_restore

    class Mine(keras.callbacks.Callback):
        pass

    first, mine = keras.callbacks.Callback(), Mine()
    checkpoint = backup_and_restore(tmp_path / "ckpt", {"run": 1})
    stack = callback_stack([mine], checkpoint=checkpoint, first=[first])
    kinds = [type(c) for c in stack]
    assert type(stack[0]) is type(checkpoint[0].guard) and stack[0].checkpoint is checkpoint[0]
    assert stack[1] is first
    assert kinds[2:4] == [StopOnNonFiniteLoss, SyncBatchNormStatistics]
    assert stack[4] is checkpoint[0] and stack[5] is mine
    plain = callback_stack(None, sync_batchnorm=False)
    assert [type(c) for c in plain] == [StopOnNonFiniteLoss]


def test_histories_of_recipe_steps_merge_by_key():
    import math

    from keras_tl.engine import epoch_history
    from keras_tl.engine import merge_histories

    head = epoch_history(None, [{"loss": 1.0, "C": 0.5}])
    fitted = epoch_history(None, [{"loss": 0.5, "accuracy": 0.75}, {"loss": 0.25,
                                                                     "accuracy": 1.0}])
    merged = merge_histories(head, fitted, None)
    assert merged.epoch == [0, 1, 2]
    assert merged.history["loss"] == [1.0, 0.5, 0.25]
    assert merged.history["C"][0] == 0.5 and math.isnan(merged.history["C"][1])
    assert math.isnan(merged.history["accuracy"][0])
    assert merge_histories(None, fitted, None).history == fitted.history


def test_one_as_arrays_reads_every_form_of_data(tmp_path):
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from keras_tl.data import as_arrays
    from keras_tl.data import as_dataset

    x = np.arange(6 * 4 * 4 * 3, dtype=np.float32).reshape(6, 4, 4, 3)
    y = np.array([0, 1, 0, 1, 0, 1])
    for form in ((x, y), (x, y[:, None]),
                 tf.data.Dataset.from_tensor_slices((x, y)),
                 tf.data.Dataset.from_tensor_slices((x, y)).batch(4),
                 as_dataset((x, y), batch_size=4, shuffle=False)):
        got_x, got_y = as_arrays(form, split="train")
        np.testing.assert_array_equal(got_x, x)
        np.testing.assert_array_equal(got_y, y)
    inputs, labels = as_arrays({"a": x, "b": y})
    assert labels is None and set(inputs) == {"a", "b"}
    first, labels = as_arrays((x, y), limit=3, seed=0)
    assert len(first) == 3 and len(labels) == 3
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((4, 4, 3), 7, np.uint8)).save(tmp_path / name / "a.png")
    images, labels = as_arrays(str(tmp_path), image_size=(4, 4))
    assert images.shape == (2, 4, 4, 3) and labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match="3 samples but 2 labels"):
        as_arrays((x[:3], y[:2]))
    with pytest.raises(TypeError, match="Data must be an array"):
        as_arrays(object())
