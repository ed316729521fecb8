"""Choosing a pretrained backbone for a data set without fine-tuning.

Fine-tuning every candidate to see which transfers best costs a training run
each. Transferability scores predict the ranking from one forward pass over
the target's labelled images:

- `log_me` (You et al., "LogME: Practical Assessment of Pre-trained Models
  for Transfer Learning", ICML 2021): the log marginal likelihood (evidence)
  of the labels under a Bayesian linear model on the frozen features. Needs
  only a feature extractor.
- `leep` (Nguyen et al., ICML 2020) and `nce` (Tran et al., ICCV 2019):
  how well the source classifier's predicted classes explain the target
  labels. Need a classifier with its source head.

`rank_backbones` scores a list of candidates (zoo names or models) on the
user's data and prints a table; `recommend_backbone` picks the best one
within a parameter or latency budget.

Before LogME, `rank_backbones` centers each candidate's embeddings on the
target data's mean and L2-normalizes them (`normalize_features`, "CL2N" in
Wang et al., "SimpleShot", 2019). Two reasons: LogME's linear model has no
intercept, so an offset shared by every embedding (large after a ReLU) is
scored as if it carried label information; and raw embeddings of different
networks differ in scale by orders of magnitude, while the feature-extraction
head classifies L2-normalized embeddings. On the digits benchmark
(`benchmarks/select_backbone.py`, five pretrained candidates) this raised
Kendall's tau between the ranking and feature-extraction accuracy from 0.70
/ 0.59 / 0.38 to 0.84 / 0.72 / 0.70 at 10 / 20 / 40 labels per class
(means over 10 splits). `normalization=None` scores raw embeddings, as in
the LogME paper.
"""

import dataclasses
import os
import re
import time

import keras
import numpy as np
import tensorflow as tf

from keras_tl._utils.validation import check_same_length
from keras_tl.backbones import backbone_source
from keras_tl.backbones import build_backbone
from keras_tl.backbones import get_spec
from keras_tl.data import as_dataset
from keras_tl.features import extract
from keras_tl.preprocessing import ImagePreprocessing

__all__ = [
    "METRICS",
    "NORMALIZATIONS",
    "BackboneRanking",
    "BackboneScore",
    "leep",
    "log_me",
    "nce",
    "normalize_features",
    "rank_backbones",
    "recommend_backbone",
]

METRICS = ("logme", "leep", "nce")
NORMALIZATIONS = ("center_l2", "l2", None)

# MacKay's fixed-point updates converge in a handful of steps; the cap only
# guards against degenerate features.
_LOGME_MAX_ITERATIONS = 100
_LOGME_TOLERANCE = 1e-6


def log_me(features, labels):
    """LogME: the evidence of the labels given frozen features.

    For each class (one-vs-rest target) a Bayesian linear model
    `y = F w + noise`, with prior `w ~ N(0, 1/alpha)` and noise
    `N(0, 1/beta)`, has its hyperparameters set by maximizing the marginal
    likelihood `p(y | F, alpha, beta)` (MacKay's fixed-point iteration);
    the score is that maximum log evidence divided by the number of
    examples, averaged over classes. Higher is better; scores of different
    backbones on the same data are comparable.

    Args:
        features: float array `(n, feature_dim)`.
        labels: int class labels `(n,)`, or a float array `(n, k)` of
            regression targets (one evidence per column).

    Returns:
        The LogME score (float).

    Raises:
        ValueError: for mismatched lengths, non-finite features or a single
            class.

    Example:

    ```python
    features, labels = keras_tl.features.extract(backbone, (x, y))
    log_me(features, labels)  # -> 0.731
    ```
    """
    features = _check_features(features, labels)
    targets = _targets(labels)
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    dim = features.shape[1]
    evidences = [_log_me_target(u, s, target, dim)[0] for target in targets.T]
    return float(np.mean(evidences))


def normalize_features(features, normalization="center_l2"):
    """Puts embeddings of different backbones on a comparable footing.

    Args:
        features: float array `(n, feature_dim)`.
        normalization: `"center_l2"` subtracts the mean embedding of these
            examples, then scales each row to unit L2 norm; `"l2"` only
            scales rows; `None` returns the features unchanged.

    Returns:
        A float64 array of the same shape.

    Raises:
        ValueError: for an unknown `normalization`.

    Example:

    ```python
    features, labels = keras_tl.features.extract(backbone, (x, y))
    log_me(normalize_features(features), labels)  # -> 0.105
    ```
    """
    _check_normalization(normalization)
    features = np.asarray(features, np.float64)
    if normalization is None:
        return features
    if normalization == "center_l2":
        features = features - features.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def _check_normalization(normalization):
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"Unknown normalization {normalization!r}; expected one of {NORMALIZATIONS}."
        )


def _check_features(features, labels):
    features = np.asarray(features, np.float64)
    if features.ndim != 2:
        raise ValueError(
            f"features must have shape (n, feature_dim); got {features.shape}. "
            "Pool feature maps first (keras_tl.build_backbone does)."
        )
    if len(features) != len(labels):
        raise ValueError(
            f"{len(features)} feature vectors but {len(labels)} labels: pass one "
            "label per example."
        )
    if not np.all(np.isfinite(features)):
        raise ValueError(
            "features contain NaN or infinite values; check the backbone's "
            "preprocessing and weights."
        )
    return features


def _targets(labels):
    labels = np.asarray(labels)
    if labels.ndim == 2 and np.issubdtype(labels.dtype, np.floating):
        return labels.astype(np.float64)
    labels = labels.reshape(-1).astype(np.int64)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(
            "The labels hold a single class; transferability needs examples "
            "of at least two classes."
        )
    return (labels[:, None] == classes[None, :]).astype(np.float64)


def _log_me_target(u, s, y, dim):
    """Maximum log evidence per example of one target column.

    Works on the thin SVD `F = U diag(s) V^T`, so the cost per class is
    `O(n min(n, d))` whether features are wider than the data or not.

    Returns:
        `(evidence / n, alpha, beta)`.
    """
    n = len(y)
    # Directions with (numerically) zero variance carry no information and
    # would make the fixed point divide 0 by 0.
    keep = s > 1e-10 * max(float(s.max(initial=0.0)), 1e-300)
    u, s = u[:, keep], s[keep]
    if not len(s):
        # No feature varies: the labels are explained by noise alone.
        beta = n / max(float(y @ y), 1e-300)
        evidence = n / 2.0 * np.log(beta) - n / 2.0 - n / 2.0 * np.log(2.0 * np.pi)
        return float(evidence / n), float("inf"), float(beta)
    sigma2 = s**2
    z = u.T @ y
    # Part of y outside the span of the features: no weight can fit it.
    residual_outside = max(float(y @ y - z @ z), 0.0)
    alpha, beta = 1.0, 1.0
    for _ in range(_LOGME_MAX_ITERATIONS):
        shrink = beta * sigma2 / (alpha + beta * sigma2)
        gamma = float(shrink.sum())
        # ||m||^2 and ||y - F m||^2 of the posterior mean m = beta A^-1 F^T y.
        mean_norm2 = float(np.sum((beta * s * z / (alpha + beta * sigma2)) ** 2))
        residual2 = residual_outside + float(np.sum(((1.0 - shrink) * z) ** 2))
        new_alpha = max(gamma, 1e-12) / max(mean_norm2, 1e-300)
        # When the features can fit every label (n <= rank), gamma reaches n.
        new_beta = max(n - gamma, 1e-12) / max(residual2, 1e-300)
        converged = abs(new_alpha / new_beta - alpha / beta) <= _LOGME_TOLERANCE * (
            alpha / beta
        )
        alpha, beta = new_alpha, new_beta
        if converged:
            break
    mean_norm2 = float(np.sum((beta * s * z / (alpha + beta * sigma2)) ** 2))
    shrink = beta * sigma2 / (alpha + beta * sigma2)
    residual2 = residual_outside + float(np.sum(((1.0 - shrink) * z) ** 2))
    # log|A| of A = alpha I_d + beta F^T F: d - rank eigenvalues equal alpha.
    log_det = float(np.sum(np.log(alpha + beta * sigma2))) + (dim - len(s)) * np.log(alpha)
    evidence = (
        dim / 2.0 * np.log(alpha)
        + n / 2.0 * np.log(beta)
        - 0.5 * log_det
        - beta / 2.0 * residual2
        - alpha / 2.0 * mean_norm2
        - n / 2.0 * np.log(2.0 * np.pi)
    )
    return float(evidence / n), float(alpha), float(beta)


def leep(source_probabilities, labels):
    """LEEP: log expected empirical prediction of a source classifier.

    The source classifier's predicted distribution over its own classes `z`
    is mapped to the target classes through the empirical conditional
    `P(y | z)` built on the target data; the score is the mean log
    likelihood of the true target labels under that mapping. It is at most
    0; closer to 0 is better.

    Args:
        source_probabilities: float array `(n, source_classes)`, the source
            classifier's softmax outputs on the target images.
        labels: int target labels `(n,)`.

    Returns:
        The LEEP score (float, <= 0).

    Example:

    ```python
    probs = source_classifier.predict(x)
    leep(probs, y)  # -> -0.84
    ```
    """
    probs, labels = _check_probabilities(source_probabilities, labels)
    num_target = int(labels.max()) + 1
    joint = np.zeros((probs.shape[1], num_target))
    np.add.at(joint.T, labels, probs)
    joint /= len(labels)
    conditional = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1e-300)
    expected = np.einsum("nz,zn->n", probs, conditional[:, labels])
    return float(np.mean(np.log(np.maximum(expected, 1e-300))))


def nce(source_labels, labels):
    """NCE: negative conditional entropy of target labels given source labels.

    `-H(Y | Z)` where `Z` is the source classifier's predicted class (argmax)
    of each target image. It is at most 0; 0 means the source class
    determines the target class.

    Args:
        source_labels: int array `(n,)` of predicted source classes, or the
            `(n, source_classes)` probabilities (their argmax is taken).
        labels: int target labels `(n,)`.

    Returns:
        The NCE score (float, <= 0).

    Example:

    ```python
    nce(source_classifier.predict(x), y)  # -> -0.51
    ```
    """
    source_labels = np.asarray(source_labels)
    if source_labels.ndim == 2:
        source_labels = source_labels.argmax(axis=1)
    source_labels = source_labels.astype(np.int64).reshape(-1)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    check_same_length(len(source_labels), len(labels), "source prediction")
    joint = np.zeros((source_labels.max() + 1, labels.max() + 1))
    np.add.at(joint, (source_labels, labels), 1.0)
    joint /= len(labels)
    marginal = joint.sum(axis=1, keepdims=True)
    nonzero = joint > 0
    conditional = joint[nonzero] / np.broadcast_to(marginal, joint.shape)[nonzero]
    return float(np.sum(joint[nonzero] * np.log(conditional)))


def _check_probabilities(probabilities, labels):
    probs = np.asarray(probabilities, np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(
            f"source_probabilities must have shape (n, source_classes) with n = "
            f"{len(labels)} labels; got {probs.shape}."
        )
    if np.any(probs < 0) or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        # Logits rather than probabilities: softmax them.
        shifted = probs - probs.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    if labels.min() < 0:
        raise ValueError("Target labels must be non-negative integers.")
    return probs, labels


@dataclasses.dataclass
class BackboneScore:
    """One candidate's row in a `BackboneRanking`.

    Args:
        name: display name of the candidate.
        score: the transferability score (higher is better).
        metric: `"logme"`, `"leep"` or `"nce"`.
        params: number of parameters of the scored network.
        input_shape: the input shape it was scored at.
        seconds: wall time of its forward pass and scoring.
        latency_ms: median time of a one-image forward pass, milliseconds.
        candidate: what was passed in (zoo name or model), to hand on to a
            recipe.

    Example:

    ```python
    ranking.best.name, ranking.best.score  # -> ('mnist_cnn', 1.02)
    ```
    """

    name: str
    score: float
    metric: str
    params: int
    input_shape: tuple
    seconds: float
    latency_ms: float
    candidate: object = dataclasses.field(repr=False, default=None)


class BackboneRanking(list):
    """`BackboneScore` rows sorted best first; prints as a table.

    Args:
        rows: `BackboneScore` objects (sorted by descending score).

    Example:

    ```python
    ranking = rank_backbones(["mobilenet_v2", "resnet50"], (x, y))
    ranking.best.candidate  # -> 'mobilenet_v2'
    print(ranking)
    ```
    """

    def __init__(self, rows=()):
        super().__init__(sorted(rows, key=lambda row: row.score, reverse=True))

    @property
    def best(self):
        return self[0] if self else None

    def names(self):
        return [row.name for row in self]

    def __str__(self):
        header = ("rank", "backbone", "metric", "score", "params", "input",
                  "seconds", "latency ms")
        lines = [
            (
                str(i),
                row.name,
                row.metric,
                f"{row.score:.4f}",
                f"{row.params:,}",
                "x".join(str(d) for d in row.input_shape),
                f"{row.seconds:.1f}",
                f"{row.latency_ms:.1f}",
            )
            for i, row in enumerate(self, start=1)
        ]
        widths = [max(len(cell) for cell in column) for column in zip(header, *lines)]
        fmt = "  ".join(f"{{:{'<' if i == 1 else '>'}{w}}}" for i, w in enumerate(widths))
        return "\n".join([fmt.format(*header)] + [fmt.format(*line) for line in lines])


def rank_backbones(
    candidates,
    train_data,
    *,
    metric="logme",
    normalization="center_l2",
    weights="imagenet",
    input_shape=None,
    batch_size=64,
    cache_dir=None,
    verbose=1,
):
    """Ranks candidate backbones for a labelled data set without training.

    Each candidate runs once over `train_data` (images resized and their
    channels converted to its input), and its frozen outputs are scored.
    For LogME the embeddings are first centered and L2-normalized (see
    the module docstring for why and what it measured).
    With `cache_dir`, embeddings are stored through
    `keras_tl.features.extract`, so a later `feature_extraction` or a
    re-ranking reuses them.

    Args:
        candidates: a list of zoo names (`keras_tl.list_backbones()`),
            KerasHub image presets (built-in names, `hf://` handles, local
            preset folders; shown by folder name) and `keras.Model`s, or a
            dict `{display_name: candidate}`. For
            `"logme"`, a model maps images to features or feature maps (pass
            `keras.Model(m.input, m.get_layer("avg_pool").output)` for a
            classifier). For `"leep"`/`"nce"`, a model is a source
            classifier (its outputs are the source-class probabilities or
            logits); a zoo name then means its ImageNet classifier (KerasHub
            presets, being backbones, are ranked with `"logme"` only).
        train_data: labelled target images: a folder, `(x, y)` arrays or a
            `tf.data.Dataset` of `(image, label)`, images in [0, 255].
        metric: `"logme"` (default), `"leep"` or `"nce"`.
        normalization: how LogME sees the embeddings: `"center_l2"`
            (default), `"l2"` or `None` (raw, as in the LogME paper); see
            `normalize_features`. Ignored by `"leep"` and `"nce"`.
        weights: weights of zoo names: `"imagenet"` or `None` (a KerasHub
            preset: its own weights, or `None`).
        input_shape: input shape of zoo names for `"logme"`; defaults to
            the images' size (at least the network's minimum) with 3
            channels. A KerasHub preset runs at the size it was trained at.
        batch_size: batch size of the forward passes.
        cache_dir: folder for the embeddings (`<cache_dir>/<name>.npy`); use
            one folder per data set.
        verbose: 1 prints the table.

    Returns:
        A `BackboneRanking` (best first).

    Raises:
        ValueError: an unknown metric, zoo name or an empty candidate list.

    Example:

    ```python
    ranking = rank_backbones(
        ["mobilenet_v3_small", "efficientnet_b0", "resnet50"], "leaves/train")
    model = keras_tl.recipes.feature_extraction(ranking.best.candidate, ...)
    ```
    """
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; expected one of {METRICS}.")
    _check_normalization(normalization)
    named = _named_candidates(candidates)
    data = as_dataset(train_data, batch_size=batch_size, shuffle=False)
    rows = []
    for name, candidate in named.items():
        start = time.perf_counter()
        network = _build_candidate(candidate, metric, weights, input_shape, data.image_shape)
        images = _fit_images(data.train, network.input_shape)
        cache_path = None
        if cache_dir is not None:
            os.makedirs(cache_dir, exist_ok=True)
            cache_path = os.path.join(cache_dir, f"{_file_name(name)}_{metric}.npy")
        outputs, labels = extract(network, images, batch_size=batch_size, cache_path=cache_path)
        if metric == "logme":
            score = log_me(normalize_features(outputs, normalization), labels)
        elif metric == "leep":
            score = leep(outputs, labels)
        else:
            score = nce(outputs, labels)
        seconds = time.perf_counter() - start
        rows.append(
            BackboneScore(
                name=name,
                score=score,
                metric=metric,
                params=int(network.count_params()),
                input_shape=tuple(network.input_shape[1:]),
                seconds=seconds,
                latency_ms=_latency_ms(network, images),
                candidate=candidate,
            )
        )
        if verbose:
            print(f"  {name}: {metric} {score:.4f} ({seconds:.1f} s)")
    ranking = BackboneRanking(rows)
    if verbose:
        print(ranking)
    return ranking


def recommend_backbone(
    candidates,
    train_data=None,
    *,
    max_params=None,
    max_latency_ms=None,
    **rank_kwargs,
):
    """The best-scoring backbone within a size or latency budget.

    Args:
        candidates: a `BackboneRanking` from `rank_backbones`, or candidates
            to rank first (then `train_data` is required).
        train_data: labelled target images when ranking here.
        max_params: largest number of parameters allowed.
        max_latency_ms: largest one-image latency allowed (measured on this
            machine by `rank_backbones`).
        **rank_kwargs: passed to `rank_backbones`.

    Returns:
        The chosen `BackboneScore` (`.candidate` goes to a recipe).

    Raises:
        ValueError: when no candidate fits the limits; the message lists
            each candidate's size and latency.

    Example:

    ```python
    choice = recommend_backbone(
        ["mobilenet_v3_small", "resnet50"], (x, y), max_params=5_000_000)
    model = keras_tl.recipes.feature_extraction(choice.candidate, (x, y))
    ```
    """
    if isinstance(candidates, BackboneRanking):
        ranking = candidates
    else:
        if train_data is None:
            raise ValueError(
                "recommend_backbone needs train_data to rank the candidates, or "
                "a BackboneRanking from rank_backbones."
            )
        ranking = rank_backbones(candidates, train_data, **rank_kwargs)
    for row in ranking:
        if max_params is not None and row.params > max_params:
            continue
        if max_latency_ms is not None and row.latency_ms > max_latency_ms:
            continue
        return row
    listing = "; ".join(
        f"{row.name}: {row.params:,} parameters, {row.latency_ms:.1f} ms" for row in ranking
    )
    raise ValueError(
        f"No candidate fits max_params={max_params}, max_latency_ms="
        f"{max_latency_ms} ({listing}). Relax a limit or add smaller candidates."
    )


def _named_candidates(candidates):
    if isinstance(candidates, dict):
        named = dict(candidates)
    else:
        if isinstance(candidates, (str, keras.Model)):
            candidates = [candidates]
        named = {}
        for candidate in candidates:
            name = _display_name(candidate)
            if name in named:
                raise ValueError(
                    f"Two candidates are named {name!r}; pass a dict "
                    "{display_name: candidate} to tell them apart."
                )
            named[name] = candidate
    if not named:
        raise ValueError("No candidate backbones given.")
    for name, candidate in named.items():
        if not isinstance(candidate, (str, keras.Model)):
            raise TypeError(
                f"Candidate {name!r} is a {type(candidate).__name__}; pass zoo "
                "names or keras.Model objects."
            )
    return named


def _display_name(candidate):
    if not isinstance(candidate, str):
        return candidate.name
    if os.path.isdir(candidate):
        # A preset folder: its name, not the whole path.
        return os.path.basename(os.path.normpath(candidate)) or candidate
    return candidate


def _build_candidate(candidate, metric, weights, input_shape, image_shape):
    if isinstance(candidate, (str, os.PathLike)) and backbone_source(candidate) in (
            "saved_model", "model"):
        # A SavedModel or a saved feature extractor: built at the data's size.
        if metric != "logme":
            raise ValueError(f"{metric} needs a source classifier; rank {candidate!r} "
                             "with metric='logme'.")
        return build_backbone(candidate, input_shape=input_shape or (
            tuple(image_shape[:2]) + (3,) if image_shape is not None else None))
    if backbone_source(candidate) == "keras_hub":
        if metric != "logme":
            raise ValueError(
                f"{metric} needs a source classifier; KerasHub preset {candidate!r} is "
                "a backbone. Rank it with metric='logme'."
            )
        return build_backbone(candidate, weights=weights)
    if metric == "logme":
        if isinstance(candidate, str):
            spec = get_spec(candidate)
            if input_shape is None:
                side = lambda s: max(int(s), spec.min_size)  # noqa: E731
                input_shape = (side(image_shape[0]), side(image_shape[1]), 3)
            return build_backbone(candidate, weights=weights, input_shape=input_shape)
        return build_backbone(candidate)
    if isinstance(candidate, str):
        return _zoo_classifier(candidate, weights)
    if len(candidate.output.shape) != 2:
        raise ValueError(
            f"{metric} needs a source classifier with outputs (batch, "
            f"source_classes); {candidate.name} outputs {candidate.output.shape}. "
            "Use metric='logme' for feature extractors."
        )
    return candidate


def _zoo_classifier(name, weights):
    """The zoo network with its ImageNet head, taking raw images of any size."""
    spec = get_spec(name)
    size = (spec.default_size, spec.default_size)
    constructor = getattr(keras.applications, spec.constructor)
    net = constructor(include_top=True, weights=weights, input_shape=(*size, 3), name=spec.name)
    inputs = keras.Input(shape=(*size, 3), name="image")
    x = ImagePreprocessing(spec.preprocessing, name="preprocessing")(inputs)
    return keras.Model(inputs, net(x), name=f"{spec.name}_classifier")


def _fit_images(dataset, input_shape):
    """Resizes images and converts channels to what a network takes."""
    height, width, channels = input_shape[1:4]

    def fit(images, labels):
        images = tf.cast(images, tf.float32)
        if height is not None and width is not None and (
            images.shape[1] != height or images.shape[2] != width
        ):
            images = tf.image.resize(images, (height, width))
        if images.shape[-1] == 1 and channels == 3:
            images = tf.image.grayscale_to_rgb(images)
        elif images.shape[-1] == 3 and channels == 1:
            images = tf.image.rgb_to_grayscale(images)
        elif channels is not None and images.shape[-1] != channels:
            raise ValueError(
                f"Images have {images.shape[-1]} channels; the network takes "
                f"{channels}."
            )
        return images, labels

    return dataset.map(fit, num_parallel_calls=tf.data.AUTOTUNE)


def _latency_ms(network, images, repeats=5):
    # NumPy, not a tf.Tensor: JAX's jitted predict step cannot take one.
    one = np.asarray(next(iter(images.take(1)))[0][:1])
    network.predict_on_batch(one)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        network.predict_on_batch(one)
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def _file_name(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
