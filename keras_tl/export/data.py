"""Data for an export: calibration samples for the int8 converter.

`keras_tl.data.as_arrays` reads every accepted form of data into arrays;
`representative_dataset` feeds them one by one to the converter.
"""

import numpy as np

__all__ = [
    "representative_dataset",
    "take_rows",
]


def take_rows(inputs, index):
    if isinstance(inputs, dict):
        return {k: np.asarray(v)[index] for k, v in inputs.items()}
    return np.asarray(inputs)[index]


def representative_dataset(inputs):
    n = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)

    def generate():
        for i in range(n):
            sample = take_rows(inputs, slice(i, i + 1))
            if isinstance(sample, dict):
                yield {k: v.astype(np.int32 if v.dtype == bool else v.dtype) for k, v in sample.items()}
            else:
                yield [sample.astype(np.float32)]

    return generate
