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
