"""Many L2-regularized softmax regressions on one set of embeddings, at once.

Choosing the head's regularization takes one fit per (fold, strength) pair.
They share the embeddings and differ only in which rows count and in the
penalty, so they are solved together: one kernel of shape
`(rank, problems * classes)`, one matrix product per step for all of them,
and one traced function for the whole path.

Two exact changes of variables make the fits cheap and well conditioned:

- the kernel is written in the principal basis of the normalized
  embeddings, `kernel = V @ w`, where `V` holds the right singular vectors.
  It is a rotation, so the objective and its minimizer are unchanged, but
  Adam's per-coordinate steps then follow decorrelated directions and reach
  the optimum in a fraction of the steps they need on raw features;
- with fewer examples than dimensions (`n < d`), the L2-penalized minimizer
  lies in the span of the examples (the representer theorem), so the
  problem is solved on the `n` coordinates `U S` of the rows in that basis
  instead of `d`.

Memory: with `n >= d` the embeddings (possibly a read-only memory map) are
used as they are, scaled to unit norm inside the product, so no normalized
or rotated copy of them is made.
"""

import numpy as np

from keras_tl._utils.arrays import shared_tensor
from keras_tl._utils.memory import release_free_heap

__all__ = ["BatchedLogisticSolver", "PrincipalBasis", "logits_in_chunks", "row_scales"]

# Rows per chunk when reducing over (memory-mapped) embeddings: small
# enough that its copies stay a fraction of the embeddings.
_CHUNK = 2048
# Chunks are freed by other threads than those that allocated them, which
# glibc keeps rather than reuses: the loops over them hand freed memory back
# (see `keras_tl._utils.memory`) at most this often, in seconds.
_RELEASE_EVERY = 0.25


def logits_in_chunks(rows, kernels, biases):
    """Yields `(start, logits)` of unit-normalized `rows`, `_CHUNK` rows at a time.

    Args:
        rows: `(n, d)` embeddings (arrays, memory maps, or anything sliced
            into arrays); only one chunk is in memory at a time.
        kernels: `(problems, d, classes)`.
        biases: `(problems, classes)`.

    Yields:
        The chunk's first row and its logits, `(problems, rows, classes)`.
    """
    import tensorflow as tf

    for start in range(0, len(rows), _CHUNK):
        chunk = np.asarray(rows[start : start + _CHUNK], np.float32)
        chunk = chunk / np.maximum(np.linalg.norm(chunk, axis=1, keepdims=True), 1e-6)
        logits = tf.einsum("nd,qdk->qnk", chunk, kernels) + biases[:, None, :]
        yield start, logits.numpy()
        release_free_heap(every=_RELEASE_EVERY)


def row_scales(features):
    """`1 / ||row||`, as `keras.layers.UnitNormalization` divides (floored)."""
    norms = np.empty(len(features), np.float32)
    for start in range(0, len(features), _CHUNK):
        chunk = np.asarray(features[start : start + _CHUNK], np.float32)
        norms[start : start + _CHUNK] = np.linalg.norm(chunk, axis=1)
    # A NaN or inf anywhere in a row makes its norm non-finite: one pass
    # checks every value, and names the example before any solver sees it.
    bad = np.flatnonzero(~np.isfinite(norms))
    if len(bad):
        raise ValueError(
            f"The embeddings of {len(bad)} example(s) are not finite (NaN or inf); the "
            f"first is example {int(bad[0])} of the training data. Its input holds NaN "
            "or inf values (or the backbone overflowed on it): fix or drop it."
        )
    return 1.0 / np.maximum(norms, 1e-6)


class PrincipalBasis:
    """The rotation (and, when `n < d`, the reduction) the solver works in.

    Args:
        features: `(n, d)` embeddings, unnormalized (arrays or memory maps).
        scales: `row_scales(features)`.
    """

    def __init__(self, features, scales):
        n, d = features.shape
        self.reduced = n < d
        import tensorflow as tf

        # Eigenvectors of a Gram matrix, in TensorFlow: NumPy's LAPACK (an
        # SVD above all) contends badly with TensorFlow's threads in one
        # process, up to 50x slower right after a forward pass.
        if self.reduced:
            unit = tf.constant(np.asarray(features, np.float32) * scales[:, None], tf.float64)
            values, vectors = tf.linalg.eigh(tf.matmul(unit, unit, transpose_b=True))
            values, vectors = values.numpy()[::-1], vectors.numpy()[:, ::-1]
            keep = values > max(values[0], 1e-30) * 1e-12
            singular = np.sqrt(values[keep])
            # The training rows in the basis: their coordinates `U S`.
            self.rows = np.ascontiguousarray(vectors[:, keep] * singular, np.float32)
            basis = tf.matmul(unit, tf.constant(vectors[:, keep] / singular), transpose_a=True)
            self.basis = np.ascontiguousarray(basis.numpy(), np.float32)
        else:
            # In float32: any orthonormal basis leaves the objective and its
            # minimizer unchanged, and float32's decorrelates Adam's steps as
            # well as float64's, at half the time and a quarter of the
            # memory (no float64 copies of the chunks or the Gram matrix).
            per_row = tf.constant(scales)
            gram = tf.zeros((d, d), tf.float32)
            for start in range(0, n, _CHUNK):
                chunk = tf.constant(np.asarray(features[start : start + _CHUNK], np.float32))
                chunk = chunk * per_row[start : start + _CHUNK, None]
                gram += tf.matmul(chunk, chunk, transpose_a=True)
                # After every chunk, not every _RELEASE_EVERY: each frees a few
                # tens of MB on TensorFlow's threads in well under 0.25 s.
                release_free_heap()
            _, vectors = tf.linalg.eigh(gram)
            self.rows = None
            self.basis = np.ascontiguousarray(vectors.numpy()[:, ::-1], np.float32)
        release_free_heap()

    @property
    def rank(self):
        return self.basis.shape[1]


class BatchedLogisticSolver:
    """Full-batch Adam on many softmax regressions sharing embeddings.

    Problem `q` minimizes `sum_i m[q, i] CE(y_i, z_i W_q + b_q) / sum_i m[q, i]
    + penalty[q] ||W_q||^2` (scikit-learn's objective when `m` are sample
    weights and `penalty = 1 / (2 C n)`), starting from the nearest class
    mean classifier of its own rows. The problems are independent: Adam's
    steps are per coordinate, so solving them together equals solving them
    one by one.

    With `multi_label`, each class is its own binary logistic regression
    (one-vs-rest: sigmoid cross-entropy summed over the classes, which
    decouples them), started from the direction of its positives' mean
    away from the overall mean and the log-odds of its prevalence.

    Args:
        features: `(n, d)` embeddings (unnormalized; arrays or memory maps).
        labels: int `(n,)`; with `multi_label`, 0/1 `(n, classes)`.
        num_classes: number of classes.
        steps: Adam steps.
        learning_rate: Adam learning rate (in the principal basis, where
            the coordinates are decorrelated: within 1% of scikit-learn's
            objective in 200 steps unless the classes are nearly separable
            and the penalty weak).
        multi_label: one sigmoid per class instead of one softmax.
        label_weights: with `multi_label`, `(positive, negative)` per-class
            weights of the examples' terms (`class_weight`), or `None`.
    """

    def __init__(self, features, labels, num_classes, steps=200, learning_rate=1.0,
                 multi_label=False, label_weights=None):
        import tensorflow as tf

        self.num_classes = num_classes
        self.steps = steps
        self.learning_rate = learning_rate
        scales = row_scales(features)
        self.space = PrincipalBasis(features, scales)
        if self.space.reduced:
            self.x = tf.constant(self.space.rows)
            self.x_scales = tf.ones((len(labels),), tf.float32)
            self.projection = None
        else:
            self.x = shared_tensor(features)
            self.x_scales = tf.constant(scales)
            self.projection = tf.constant(self.space.basis)
        self.multi_label = bool(multi_label)
        if self.multi_label:
            targets = np.asarray(labels, np.float32)
            prevalence = np.clip(targets.mean(0), 1e-3, 1 - 1e-3)
            self.onehot = tf.constant(targets)
            self.start_targets = tf.constant(targets - targets.mean(0))
            self.start_bias = tf.constant(np.log(prevalence / (1 - prevalence)), tf.float32)
            if label_weights is None:
                self.label_weights = tf.ones((1, num_classes))
            else:
                positive, negative = label_weights
                self.label_weights = tf.constant(
                    targets * positive + (1 - targets) * negative, tf.float32)
        else:
            self.onehot = tf.one_hot(np.asarray(labels, np.int64), num_classes)
            self.start_targets = self.onehot
            self.start_bias = tf.zeros((num_classes,))
            self.label_weights = tf.ones((1, num_classes))

    def solve(self, row_weights, penalties):
        """Solves one problem per row of `row_weights`.

        Args:
            row_weights: `(problems, n)` nonnegative weights (0 leaves a row
                out of that problem, e.g. a held-out fold).
            penalties: `(problems,)` L2 penalty factors.

        Returns:
            `(kernels, biases)`: `(problems, d, classes)` and
            `(problems, classes)` for logits of the unit-normalized
            embeddings.
        """
        import tensorflow as tf

        projected = self.projection is not None
        data = [self.x, self.x_scales] + ([self.projection] if projected else [])
        weights = tf.constant(np.asarray(row_weights, np.float32).T)
        penalties = tf.constant(np.asarray(penalties, np.float32))
        state = _initial_state(self.x, self.x_scales, self.projection, self.start_targets,
                               weights, self.start_bias)
        rate = tf.constant(self.learning_rate, tf.float32)
        for first in range(1, self.steps + 1, _STEPS_PER_CALL):
            last = min(first + _STEPS_PER_CALL - 1, self.steps)
            state = _traced_steps(projected, self.multi_label)(
                *data, self.onehot, self.label_weights, weights, penalties, *state,
                tf.constant(first, tf.int32), tf.constant(last, tf.int32), rate,
            )
            release_free_heap(every=_RELEASE_EVERY)
        w, b = state[:2]
        kernels = tf.einsum("dr,rqk->qdk", tf.constant(self.space.basis), w)
        kernels, biases = kernels.numpy(), b.numpy()
        release_free_heap()
        return kernels, biases


# Adam steps per call of the traced function. Every step allocates several
# tensors as large as the logits `(n, problems * classes)` on TensorFlow's
# threads, and glibc keeps what they free (see `_RELEASE_EVERY`): between
# calls the solver hands it back, so it does not pile up over 200 steps.
_STEPS_PER_CALL = 10

_TRACED = {}


def _traced_steps(projected, multi_label=False):
    # One function per embedding layout and task for the whole process, with
    # every dimension unknown: traced once, then reused by every call, fit,
    # fold and recipe whatever the data's shape.
    key = (projected, multi_label)
    if key not in _TRACED:
        import tensorflow as tf

        matrix = tf.TensorSpec((None, None), tf.float32)
        vector = tf.TensorSpec((None,), tf.float32)
        cube = tf.TensorSpec((None, None, None), tf.float32)
        state = [cube, matrix] * 3
        scalars = [tf.TensorSpec((), tf.int32)] * 2 + [tf.TensorSpec((), tf.float32)]
        if projected:
            signature = [matrix, vector, matrix, matrix, matrix, matrix, vector] + state + scalars

            def function(*args):
                return _adam_steps(*args, multi_label=multi_label)
        else:
            signature = [matrix, vector, matrix, matrix, matrix, vector] + state + scalars

            def function(x, x_scales, *rest):
                return _adam_steps(x, x_scales, None, *rest, multi_label=multi_label)

        _TRACED[key] = tf.function(function, input_signature=signature)
    return _TRACED[key]


def _initial_state(x, x_scales, projection, targets, weights, bias):
    """Adam's starting point `(w, b, m_w, m_b, v_w, v_b)`: the class means."""
    import tensorflow as tf

    problems = tf.shape(weights)[1]
    classes = tf.shape(targets)[1]
    # Every problem starts at the normalized means of its own classes.
    targets = tf.einsum("nq,nk,n->nqk", weights, targets, x_scales)
    sums = tf.matmul(x, tf.reshape(targets, (tf.shape(x)[0], -1)), transpose_a=True)
    if projection is not None:
        sums = tf.matmul(projection, sums, transpose_a=True)
    sums = tf.reshape(sums, (-1, problems, classes))
    w = 10.0 * tf.math.divide_no_nan(sums, tf.norm(sums, axis=0, keepdims=True))
    b = tf.broadcast_to(bias, (problems, classes))
    return [w, b, tf.zeros_like(w), tf.zeros_like(b), tf.zeros_like(w), tf.zeros_like(b)]


def _adam_steps(
    x, x_scales, projection, onehot, label_weights, weights, penalties,
    w, b, m_w, m_b, v_w, v_b, first, last, learning_rate, multi_label=False,
):
    """Adam steps `first..last` (1-based, for the bias correction) from a state."""
    import tensorflow as tf

    problems = tf.shape(weights)[1]
    classes = tf.shape(onehot)[1]

    def logits_of(w, b):
        rank = tf.shape(w)[0]
        flat = tf.reshape(w, (rank, problems * classes))
        if projection is not None:
            flat = tf.matmul(projection, flat)
        logits = tf.matmul(x, flat) * x_scales[:, None]
        return tf.reshape(logits, (-1, problems, classes)) + b

    totals = tf.reduce_sum(weights, axis=0)
    labels = tf.broadcast_to(onehot[:, None, :], (tf.shape(x)[0], problems, classes))
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    scaled_weights = weights / totals
    for step in tf.range(first, last + 1):
        # The gradient of the weighted cross-entropy written out (softmax
        # minus targets): a smaller graph than a tape's, traced faster.
        # Sigmoid cross-entropy's gradient has the same form, per class.
        scores = tf.sigmoid if multi_label else tf.nn.softmax
        residual = ((scores(logits_of(w, b)) - labels) * scaled_weights[:, :, None]
                    * label_weights[:, None, :])
        grad_b = tf.reduce_sum(residual, axis=0)
        flat = tf.reshape(residual * x_scales[:, None, None], (tf.shape(x)[0], -1))
        grad_w = tf.matmul(x, flat, transpose_a=True)
        if projection is not None:
            grad_w = tf.matmul(projection, grad_w, transpose_a=True)
        grad_w = tf.reshape(grad_w, tf.shape(w)) + 2.0 * penalties[None, :, None] * w
        t = tf.cast(step, tf.float32)
        rate = learning_rate * tf.sqrt(1 - beta2**t) / (1 - beta1**t)
        m_w = beta1 * m_w + (1 - beta1) * grad_w
        m_b = beta1 * m_b + (1 - beta1) * grad_b
        v_w = beta2 * v_w + (1 - beta2) * tf.square(grad_w)
        v_b = beta2 * v_b + (1 - beta2) * tf.square(grad_b)
        w -= rate * m_w / (tf.sqrt(v_w) + eps)
        b -= rate * m_b / (tf.sqrt(v_b) + eps)
    return [w, b, m_w, m_b, v_w, v_b]
