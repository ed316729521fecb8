"""Data augmentation presets built from `keras.layers`.

Small data sets overfit; random transformations of the training images
(and, for the heavy preset, mixing pairs of images and their labels) make
every epoch show new variants. Presets:

- `"light"`: flip, small translation (3%), rotation (about 5 degrees) and
  zoom (5%);
- `"medium"`: the small-data default, geometric plus mild contrast: flip,
  translation (6%), rotation (about 11 degrees), zoom (8%) and contrast
  (10%);
- `"heavy"`: stronger geometry and contrast, `RandAugment` (two ops at low
  magnitude) and `MixUp` or `CutMix` on each batch (soft labels).

Photometric operations such as RandAugment's solarize and posterize destroy
thin strokes and small grayscale images, so only `"heavy"` uses them; on
small images (digits, icons) start from `"light"` or `"medium"`.

An `Augmentation` is a serializable layer: put it at the start of a model
(it acts only in training, so `.keras` files and exports are unaffected),
or map it over a `tf.data` pipeline on the CPU with `augment_dataset`
(which also applies the label mixing). Recipes take it as `augmentation=`.
"""

import keras
import tensorflow as tf

__all__ = [
    "FLIPS",
    "MIXING",
    "PRESETS",
    "Augmentation",
    "augment_dataset",
    "augment_training",
    "augmented_copies",
    "get",
    "mixes_labels",
    "one_hot_labels",
]

PRESETS = ("light", "medium", "heavy")
MIXING = ("mixup", "cutmix", "mixup_or_cutmix")
FLIPS = ("horizontal", "vertical", "horizontal_and_vertical")

# (translation, rotation in turns, zoom, contrast, RandAugment ops,
# RandAugment factor, label mixing) of each preset.
_PRESET_SETTINGS = {
    "light": (0.03, 0.015, 0.05, 0.0, 0, 0.0, None),
    "medium": (0.06, 0.03, 0.08, 0.1, 0, 0.0, None),
    "heavy": (0.1, 0.05, 0.12, 0.2, 2, 0.15, "mixup_or_cutmix"),
}


@keras.saving.register_keras_serializable(package="keras_tl")
class Augmentation(keras.layers.Layer):
    """A preset of random image augmentations, active only in training.

    Built from `keras.layers.RandomFlip`, `RandomTranslation`,
    `RandomRotation`, `RandomZoom` and `RandomContrast`; the `"heavy"`
    preset adds `RandAugment` and mixes labelled batches with
    `keras.layers.MixUp` / `CutMix`.
    Calling the layer transforms images only (inside a model there are no
    labels to mix); `augment_dataset` applies the mixing in `tf.data`.

    Args:
        preset: `"light"`, `"medium"` or `"heavy"`.
        flip: `"horizontal"` (natural photos), `"vertical"`,
            `"horizontal_and_vertical"` (aerial, microscopy) or `None` for
            images a mirror changes the meaning of (digits, text).
        value_range: range of the input pixels, `(0, 255)` for raw images.
        mixing: override the preset's label mixing: `"mixup"`, `"cutmix"`,
            `"mixup_or_cutmix"` (one of the two per batch), `"none"`, or
            `None` for the preset's choice.
        seed: random seed of the transformations.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    ```python
    augment = Augmentation("medium", flip=None)
    inputs = keras.Input((28, 28, 1))
    model = keras.Model(inputs, classifier(augment(inputs)))
    ```
    """

    def __init__(
        self,
        preset="medium",
        flip="horizontal",
        value_range=(0, 255),
        mixing=None,
        seed=None,
        **kwargs,
    ):
        kwargs.setdefault("name", f"augment_{preset}")
        super().__init__(**kwargs)
        if preset not in PRESETS:
            raise ValueError(f"Unknown augmentation preset {preset!r}; expected one of {PRESETS}.")
        if flip is not None and flip not in FLIPS:
            raise ValueError(f"flip must be one of {FLIPS} or None; got {flip!r}.")
        if mixing is not None and mixing != "none" and mixing not in MIXING:
            raise ValueError(
                f"mixing must be one of {MIXING}, 'none' or None (the preset's); "
                f"got {mixing!r}."
            )
        self.preset = preset
        self.flip = flip
        self.value_range = tuple(value_range)
        self.mixing = mixing
        self.seed = seed
        translate, rotate, zoom, contrast, ops, factor, preset_mixing = _PRESET_SETTINGS[
            preset
        ]
        self.label_mixing = preset_mixing if mixing is None else (
            None if mixing == "none" else mixing
        )
        layers = keras.layers
        # One seed per layer: layers sharing a seed draw the same random
        # numbers, which would tie e.g. the shift to the rotation angle.
        offsets = iter(range(8))

        def layer_seed():
            offset = next(offsets)
            return None if seed is None else seed + offset

        self.image_layers = []
        if flip:
            self.image_layers.append(layers.RandomFlip(flip, seed=layer_seed(), name="flip"))
        self.image_layers += [
            layers.RandomTranslation(translate, translate, seed=layer_seed(), name="translation"),
            layers.RandomRotation(rotate, seed=layer_seed(), name="rotation"),
            layers.RandomZoom(zoom, seed=layer_seed(), name="zoom"),
        ]
        if contrast:
            self.image_layers.append(
                layers.RandomContrast(
                    contrast, value_range=self.value_range, seed=layer_seed(), name="contrast"
                )
            )
        if ops:
            self.image_layers.append(
                layers.RandAugment(
                    value_range=self.value_range, num_ops=ops, factor=factor,
                    seed=layer_seed(), name="rand_augment",
                )
            )
        self.mixup = layers.MixUp(alpha=0.2, seed=layer_seed(), name="mixup")
        self.cutmix = layers.CutMix(factor=1.0, seed=layer_seed(), name="cutmix")

    @property
    def mixes_labels(self):
        """Whether `augment_dataset` turns labels into soft (mixed) labels."""
        return self.label_mixing is not None

    def build(self, input_shape):
        for layer in self.image_layers:
            layer.build(input_shape)
        self.built = True

    def call(self, images, training=None):
        if not training:
            return images
        images = keras.ops.cast(images, self.compute_dtype)
        for layer in self.image_layers:
            images = layer(images, training=True)
        return images

    def mix(self, images, labels):
        """Mixes a batch of images and one-hot labels (MixUp / CutMix).

        Args:
            images: float batch `(n, h, w, c)`.
            labels: one-hot or soft labels `(n, num_classes)`.

        Returns:
            `(images, soft_labels)`; unchanged when the preset does not mix.
        """
        if self.label_mixing is None:
            return images, labels
        labels = tf.cast(labels, images.dtype)

        def apply(layer):
            mixed = layer({"images": images, "labels": labels}, training=True)
            return mixed["images"], tf.cast(mixed["labels"], images.dtype)

        if self.label_mixing == "mixup":
            return apply(self.mixup)
        if self.label_mixing == "cutmix":
            return apply(self.cutmix)
        # One of the two per batch, as in the papers' combined recipes.
        use_mixup = tf.random.uniform([], seed=self.seed) < 0.5
        return tf.cond(use_mixup, lambda: apply(self.mixup), lambda: apply(self.cutmix))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "preset": self.preset,
                "flip": self.flip,
                "value_range": list(self.value_range),
                "mixing": self.mixing,
                "seed": self.seed,
            }
        )
        return config


def get(augmentation, flip="horizontal"):
    """Resolves a preset name to an `Augmentation`; passes others through.

    Args:
        augmentation: a preset name (`"light"`, `"medium"`, `"heavy"`), an
            `Augmentation`, any Keras layer or callable on image batches, or
            `None`.
        flip: the flip of a preset built from a name.

    Example:

    ```python
    get("light")  # -> <Augmentation name=augment_light, ...>
    ```
    """
    if augmentation is None or not isinstance(augmentation, str):
        return augmentation
    return Augmentation(augmentation, flip=flip)


def mixes_labels(augmentation):
    """Whether `augmentation` produces soft labels (MixUp / CutMix).

    Recipes then train with `categorical_crossentropy` on one-hot labels
    instead of `sparse_categorical_crossentropy`.

    Args:
        augmentation: anything `get` accepts.

    Example:

    >>> mixes_labels(Augmentation("heavy")), mixes_labels("medium")
    (True, False)
    """
    return bool(getattr(get(augmentation), "mixes_labels", False))


def augment_dataset(dataset, augmentation, num_classes=None, multi_label=False):
    """Applies an augmentation to a batched `(images, labels)` dataset.

    Runs in the `tf.data` pipeline (on the CPU, overlapping the training
    step). Image-only augmentations keep integer labels; a label-mixing
    `Augmentation` returns one-hot soft labels of `num_classes`.

    Args:
        dataset: batched `tf.data.Dataset` of `(images, int labels)`.
        augmentation: anything `get` accepts.
        num_classes: number of classes; required when labels are mixed.
        multi_label: the labels are already 0/1 vectors, mixed as they are.

    Returns:
        The augmented dataset.

    Example:

    ```python
    train = augment_dataset(data.train, "heavy", num_classes=10)
    model.compile(loss="categorical_crossentropy", ...)
    ```
    """
    augmentation = get(augmentation)
    if augmentation is None:
        return dataset
    mixing = mixes_labels(augmentation)
    if mixing and num_classes is None and not multi_label:
        raise ValueError(
            f"{augmentation.name} mixes labels (MixUp/CutMix): pass num_classes so "
            "the labels can become one-hot soft labels."
        )

    def apply(images, labels):
        images = _augment_in_pipeline(augmentation, images)
        if mixing:
            if not multi_label:
                labels = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), num_classes)
            images, labels = augmentation.mix(images, tf.cast(labels, tf.float32))
        return images, labels

    # One call at a time: the layers draw from stateful seed generators, and
    # parallel calls would take their draws in the order the threads run,
    # so the same seed could augment differently from one run to the next.
    # Each call augments a whole batch, and the prefetch after the map
    # overlaps it with training.
    return dataset.map(apply, num_parallel_calls=None, deterministic=True).prefetch(
        tf.data.AUTOTUNE)


def one_hot_labels(dataset, num_classes):
    """Maps a batched `(images, int labels)` dataset to one-hot labels.

    For validation data next to a training set with soft labels, so both go
    through the same `categorical_crossentropy` loss and metrics.

    Args:
        dataset: batched `tf.data.Dataset` of `(images, int labels)`, or
            `None` (returned as is).
        num_classes: number of classes.

    Example:

    ```python
    validation = one_hot_labels(data.validation, data.num_classes)
    ```
    """
    if dataset is None:
        return None
    return dataset.map(
        lambda images, labels: (
            images,
            tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), num_classes),
        )
    )


def augment_training(train, validation, augmentation, num_classes=None, *, recipe,
                     label_mixing=True, label_smoothing=0.0, multi_label=False,
                     label_weights=None):
    """The one augmentation wiring of every recipe: the training batches
    augmented, the validation batches matched to the training labels, and
    the loss those labels need.

    Image-only augmentations keep integer labels and
    `sparse_categorical_crossentropy`. A label-mixing one (MixUp/CutMix)
    makes one-hot soft labels, so the validation labels become one-hot too
    and the loss is `categorical_crossentropy`; a recipe whose targets are
    not the labels alone (distillation, domain adaptation) passes
    `label_mixing=False` and such an augmentation is refused.

    Args:
        train: batched `tf.data.Dataset` of `(images, int labels)`.
        validation: the same for validation, or `None`.
        augmentation: anything `get` accepts (`None`: no augmentation).
        num_classes: number of classes (needed for label mixing).
        recipe: the recipe's name, for error messages.
        label_mixing: whether the recipe can train on mixed labels.
        label_smoothing: mixes each one-hot label with the uniform
            distribution by this much (`0`: none): labels become one-hot
            (validation too) and the loss is
            `keras.losses.CategoricalCrossentropy(label_smoothing=...)`.
        multi_label: the labels are 0/1 vectors (several classes per
            example): the loss is `keras_tl.losses.MultiLabelCrossentropy`
            (smoothed, weighted) and MixUp/CutMix mix the vectors as they are.
        label_weights: for `multi_label`, `(positive, negative)` per-class
            weights (`keras_tl.multi_label.multi_label_weights`), or `None`.

    Returns:
        `(train, validation, loss)`.

    Example:

    ```python
    train, validation, loss = augment_training(
        data.train, data.validation, "medium", data.num_classes,
        recipe="fine_tune")
    ```
    """
    augmentation = get(augmentation)
    if multi_label:
        from keras_tl.losses import MultiLabelCrossentropy

        positive, negative = label_weights if label_weights is not None else (None, None)
        loss = MultiLabelCrossentropy(label_smoothing, positive, negative)
        if augmentation is not None and mixes_labels(augmentation) and not label_mixing:
            raise ValueError(
                f"{recipe}: augmentation {augmentation.name!r} mixes labels (MixUp/CutMix), "
                "but this recipe's targets are more than the labels. Use 'light' or 'medium'."
            )
        return augment_dataset(train, augmentation, num_classes, multi_label=True), \
            validation, loss
    loss = "sparse_categorical_crossentropy"
    if augmentation is None:
        if label_smoothing:
            return (one_hot_labels(train, num_classes), one_hot_labels(validation, num_classes),
                    keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing))
        return train, validation, loss
    if mixes_labels(augmentation):
        if not label_mixing:
            raise ValueError(
                f"{recipe}: augmentation {augmentation.name!r} mixes labels (MixUp/CutMix), "
                "but this recipe's targets are more than the labels (a teacher's soft "
                "targets, a second domain). Use 'light' or 'medium'."
            )
        loss = "categorical_crossentropy"
        validation = one_hot_labels(validation, num_classes)
        train = augment_dataset(train, augmentation, num_classes)
    else:
        train = augment_dataset(train, augmentation, num_classes)
        if label_smoothing:
            train = one_hot_labels(train, num_classes)
            validation = one_hot_labels(validation, num_classes)
    if label_smoothing:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    return train, validation, loss


def augmented_copies(dataset, augmentation, copies):
    """The original images followed by `copies` augmented passes over them.

    For the feature-extraction fast path: a frozen backbone embeds each copy
    once, the embeddings are cached, and the head is fitted on all of them,
    so augmentation does not have to run the backbone every epoch. Label
    mixing is not applied (the closed-form head needs hard labels).

    Args:
        dataset: batched `tf.data.Dataset` of `(images, labels)`.
        augmentation: anything `get` accepts.
        copies: number of augmented passes (>= 1). Each iteration of the
            result draws new transformations: extract it once (with a
            cache path to keep the embeddings).

    Returns:
        A dataset of `(1 + copies) x` the batches.

    Example:

    ```python
    features, labels = keras_tl.features.extract(
        backbone, augmented_copies(data.train, "medium", copies=4))
    ```
    """
    augmentation = get(augmentation)
    if augmentation is None:
        raise ValueError("augmented_copies needs an augmentation (e.g. 'medium').")
    if int(copies) < 1:
        raise ValueError(f"copies must be at least 1; got {copies}.")
    def augment(images, labels):
        return _augment_in_pipeline(augmentation, images), labels

    result = dataset.map(lambda images, labels: (tf.cast(images, tf.float32), labels))
    for _ in range(int(copies)):
        result = result.concatenate(dataset.map(augment))
    return result


def _augment_in_pipeline(augmentation, images):
    """Applies `augmentation` to a batch inside a `tf.data` map.

    Keras' preprocessing layers switch to TensorFlow ops inside `tf.data`
    whatever the backend, but a container layer (`Augmentation`,
    `keras.Sequential`) would run its own code with the backend's ops
    (JAX arrays cannot hold graph tensors), so its layers run one by one.
    """
    images = tf.cast(images, tf.float32)
    if isinstance(augmentation, Augmentation):
        layers = augmentation.image_layers
    elif isinstance(augmentation, keras.Sequential):
        layers = augmentation.layers
    elif isinstance(augmentation, keras.layers.Layer):
        layers = [augmentation]
    else:
        return augmentation(images)
    for layer in layers:
        images = layer(images, training=True)
    return images
