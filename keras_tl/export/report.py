"""`ExportReport` and how it is filled: parity with Keras and latency.

`compare_outputs` scores LiteRT outputs against the Keras model's on the
same inputs; `measure_latency` times several files side by side.
"""

import dataclasses
import statistics

import numpy as np

from keras_tl.export.data import take_rows
from keras_tl.export.interpreter import LiteRTModel

__all__ = [
    "compare_outputs",
    "DEFAULT_CHECK_SAMPLES",
    "ExportReport",
    "fill_parity",
    "thresholds_by_name",
    "keras_predict",
    "LATENCY_REPEATS",
    "measure_latency",
]

DEFAULT_CHECK_SAMPLES = 1000
LATENCY_REPEATS = 100


@dataclasses.dataclass
class ExportReport:
    """What `to_tflite` wrote, and how the file behaves in LiteRT.

    Sizes are of the files; the parity fields come from running the `.tflite`
    in `ai_edge_litert.interpreter.Interpreter` on the check data and compare
    with the Keras model on the same inputs. Fields that need check data (or
    labels) are `None` without it.

    Args:
        path: the `.tflite` file.
        quantization: `None` (float32), `"float16"`, `"dynamic"` or `"int8"`.
        size_bytes: size of the file.
        float32_size_bytes: size of the float32 conversion of the same model.
        labels_path: the `<stem>.labels.txt` written beside the file.
        report_path: the `<stem>.json` beside the file: this report.
        metadata: the TFLite Metadata inside the file: `"image_classifier"`
            or `"text_classifier"` (what MediaPipe Tasks read), or `None`
            for a bare file.
        input_channels: channels of the file's image input (3 for a
            grayscale model exported with `grayscale_input="rgb"`), `None`
            for other inputs.
        num_checked: number of check samples run.
        max_abs_diff: largest absolute difference between the LiteRT and
            Keras outputs.
        top1_agreement: fraction of samples where both pick the same class.
        accuracy: LiteRT accuracy on the check labels.
        keras_accuracy: Keras accuracy on the same samples.
        latency_ms: median single-sample latency of the file on this CPU.
        float32_latency_ms: the same for the float32 file, measured in the
            same rounds.
        num_threads: interpreter threads used for the latency.
        float_layers: for an int8 file from `to_tflite`, the layers whose
            ops were kept in float to keep `min_agreement` of the Keras
            answers (`[]`: every op int8); `None` otherwise.
        min_agreement: the top-1 agreement the int8 file was held to;
            `None` when none was applied.
        selection_data: where that agreement was measured:
            `"check_data"` (`"half of check_data"` with 40 samples or
            more), or `"representative_data"` without check data.
        thresholds: for a multi-label model, `{class name: threshold}`
            (the model's; apply them to the file's sigmoid scores);
            `None` otherwise.
        label_agreement: for a multi-label model, the fraction of
            (sample, class) decisions at the thresholds where the file and
            Keras agree; its `accuracy` is then the fraction of samples
            whose whole label set is right.
        checked_on: which samples `num_checked`, `top1_agreement` and
            `accuracy` were measured on: `"check_data"`, or its held-out
            half when the other half chose float layers.
        full_int8_agreement: agreement of the file with every op in int8
            on those samples.
        full_int8_size_bytes: size of that file.
        selection_agreement: agreement of the exported file on those
            samples (with check data, `top1_agreement`).

    Example:

    ```python
    report = to_tflite(model, "out/model.tflite", quantization="int8",
                       representative_data=x_train, check_data=(x_val, y_val))
    report.size_ratio, report.top1_agreement  # -> (0.27, 0.995)
    ```
    """

    path: str
    quantization: str = None
    size_bytes: int = 0
    float32_size_bytes: int = 0
    labels_path: str = None
    report_path: str = None
    metadata: str = None
    input_channels: int = None
    num_checked: int = 0
    max_abs_diff: float = None
    top1_agreement: float = None
    accuracy: float = None
    keras_accuracy: float = None
    latency_ms: float = None
    float32_latency_ms: float = None
    num_threads: int = 1
    float_layers: list = None
    min_agreement: float = None
    selection_data: str = None
    full_int8_agreement: float = None
    full_int8_size_bytes: int = None
    selection_agreement: float = None
    checked_on: str = None
    thresholds: dict = None
    label_agreement: float = None

    @property
    def size_ratio(self):
        """Size of the file over the float32 file's."""
        if not self.float32_size_bytes:
            return None
        return self.size_bytes / self.float32_size_bytes

    @property
    def full_int8_size_ratio(self):
        """Size of the full-int8 file over the float32 file's: with
        `size_ratio`, what the float layers cost."""
        if not self.float32_size_bytes or self.full_int8_size_bytes is None:
            return None
        return self.full_int8_size_bytes / self.float32_size_bytes

    @property
    def latency_ratio(self):
        """Median latency over the float32 file's (same run, same sample)."""
        if not self.latency_ms or not self.float32_latency_ms:
            return None
        return self.latency_ms / self.float32_latency_ms

    @property
    def accuracy_drop(self):
        """Keras accuracy minus LiteRT accuracy, in points (percent)."""
        if self.accuracy is None or self.keras_accuracy is None:
            return None
        return 100.0 * (self.keras_accuracy - self.accuracy)

    def to_dict(self):
        """The fields and derived ratios as a plain dict (for JSON)."""
        result = dataclasses.asdict(self)
        result.update(
            size_ratio=self.size_ratio,
            full_int8_size_ratio=self.full_int8_size_ratio,
            latency_ratio=self.latency_ratio,
            accuracy_drop=self.accuracy_drop,
        )
        return result

    def __str__(self):
        def fmt(value, spec):
            return "-" if value is None else format(value, spec)

        lines = [
            f"LiteRT export: {self.path}",
            f"  quantization      {self.quantization or 'float32'}",
            f"  size              {self.size_bytes:,} bytes "
            f"({fmt(self.size_ratio, '.3f')}x float32)",
            f"  labels            {self.labels_path}",
            f"  metadata          {self.metadata or 'none (bare file)'}",
            f"  report            {self.report_path}",
        ]
        if self.min_agreement is not None:
            kept = ", ".join(self.float_layers) if self.float_layers else "none (full int8)"
            lines += [
                f"  min agreement     {self.min_agreement:g} on {self.selection_data}: "
                f"full int8 {fmt(self.full_int8_agreement, '.4f')} "
                f"({fmt(self.full_int8_size_ratio, '.3f')}x float32), this file "
                f"{fmt(self.selection_agreement, '.4f')} "
                f"({fmt(self.size_ratio, '.3f')}x)",
                f"  kept in float     {kept}",
            ]
        if self.thresholds is not None:
            lines.append("  thresholds        " + ", ".join(
                f"{name} {value:.3f}" for name, value in self.thresholds.items()))
        if self.num_checked:
            lines += [
                f"  checked on        {self.num_checked} samples "
                f"({self.checked_on or 'check_data'}) in the LiteRT interpreter",
                f"  max |diff|        {fmt(self.max_abs_diff, '.3g')}",
                f"  top-1 agreement   {fmt(self.top1_agreement, '.4f')}",
            ]
            if self.thresholds is not None:
                lines.append(f"  label agreement   {fmt(self.label_agreement, '.4f')} "
                             "(each class at its threshold)")
            lines += [
                f"  accuracy          {fmt(self.accuracy, '.4f')} "
                f"(Keras {fmt(self.keras_accuracy, '.4f')})",
                f"  latency (median)  {fmt(self.latency_ms, '.3f')} ms "
                f"({fmt(self.latency_ratio, '.2f')}x float32, "
                f"{self.num_threads} thread(s))",
            ]
        return "\n".join(lines)


def thresholds_by_name(model, labels):
    """A multi-label model's thresholds by class name, else `None`.

    For the report and its JSON: the file itself holds the sigmoid scores,
    and an app applies each class's threshold to them.

    Args:
        model: the exported model.
        labels: the class names written with the file.

    Example:

    ```python
    thresholds_by_name(model, ["rust", "spot"])  # -> {'rust': 0.41, 'spot': 0.6}
    ```
    """
    from keras_tl.heads import get_thresholds

    thresholds = get_thresholds(model)
    if thresholds is None:
        return None
    return {str(name): float(t) for name, t in zip(labels, thresholds)}


def keras_predict(model, inputs, batch_size=64):
    outputs = model.predict(inputs, batch_size=batch_size, verbose=0)
    if isinstance(outputs, dict) and len(outputs) == 1:
        outputs = next(iter(outputs.values()))
    return np.asarray(outputs, np.float32)


def fill_parity(report, content, float32_content, inputs, targets, reference,
                 num_threads, latency_inputs=None):
    litert = LiteRTModel(content, num_threads=num_threads)
    outputs = litert.predict(inputs)
    thresholds = None if report.thresholds is None else list(report.thresholds.values())
    parity = compare_outputs(outputs, reference, targets, thresholds)
    report.label_agreement = parity.get("label_agreement")
    report.num_checked = parity["num_checked"]
    report.max_abs_diff = parity["max_abs_diff"]
    report.top1_agreement = parity["top1_agreement"]
    report.accuracy = parity["accuracy"]
    report.keras_accuracy = parity["keras_accuracy"]
    sample = take_rows(latency_inputs if latency_inputs is not None else inputs, slice(0, 1))
    float32 = litert if float32_content is content else LiteRTModel(
        float32_content, num_threads=num_threads
    )
    latencies = measure_latency([litert, float32], sample)
    report.latency_ms, report.float32_latency_ms = latencies


def compare_outputs(outputs, reference, labels=None, thresholds=None):
    """Parity of LiteRT outputs with Keras outputs on the same inputs.

    Args:
        outputs: LiteRT outputs `(n, num_classes)`.
        reference: Keras outputs for the same samples.
        labels: optional int labels `(n,)` (0/1 rows `(n, classes)` with
            `thresholds`).
        thresholds: a multi-label model's per-class thresholds: adds
            `label_agreement`, and the accuracies are of whole label sets.

    Returns:
        A dict: `num_checked`, `max_abs_diff`, `top1_agreement`, and
        `accuracy` / `keras_accuracy` (`None` without labels).

    Example:

    ```python
    compare_outputs(litert.predict(x), model.predict(x), y)["top1_agreement"]
    # -> 0.998
    ```
    """
    outputs = np.asarray(outputs, np.float32)
    reference = np.asarray(reference, np.float32)
    if outputs.shape != reference.shape:
        raise ValueError(
            f"LiteRT outputs have shape {outputs.shape} but Keras outputs "
            f"{reference.shape}; the file and the model do not match."
        )
    predicted, expected = outputs.argmax(-1), reference.argmax(-1)
    result = {
        "num_checked": int(len(outputs)),
        "max_abs_diff": float(np.max(np.abs(outputs - reference))),
        "top1_agreement": float(np.mean(predicted == expected)),
        "accuracy": None,
        "keras_accuracy": None,
    }
    if thresholds is not None:
        decided, expected_sets = outputs >= thresholds, reference >= thresholds
        result["label_agreement"] = float(np.mean(decided == expected_sets))
        if labels is not None:
            truth = np.asarray(labels) > 0.5
            result["accuracy"] = float(np.mean((decided == truth).all(-1)))
            result["keras_accuracy"] = float(np.mean((expected_sets == truth).all(-1)))
        return result
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        result["accuracy"] = float(np.mean(predicted == labels))
        result["keras_accuracy"] = float(np.mean(expected == labels))
    return result


def measure_latency(models, sample, repeats=LATENCY_REPEATS, warmup=5):
    """Median single-sample latency of LiteRT models, measured side by side.

    The models run in alternation, `repeats` rounds, so load on a shared
    machine affects them alike and their ratio is meaningful.

    Args:
        models: list of `LiteRTModel`.
        sample: one sample with its batch dimension (array or dict).
        repeats: timed calls per model.
        warmup: untimed calls per model first.

    Returns:
        A list of median latencies in milliseconds, one per model.

    Example:

    ```python
    int8_ms, float32_ms = measure_latency([int8, float32], x[:1])
    ```
    """
    feeds = [model.prepare(sample) for model in models]
    for model, feed in zip(models, feeds):
        for _ in range(warmup):
            model.timed_call(feed)
    times = [[] for _ in models]
    for _ in range(repeats):
        for i, (model, feed) in enumerate(zip(models, feeds)):
            times[i].append(model.timed_call(feed))
    return [1000.0 * statistics.median(t) for t in times]
