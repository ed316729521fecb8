"""`LiteRTModel`: a `.tflite` file in the LiteRT interpreter, called like Keras."""

import time

import numpy as np

from keras_tl.export.data import take_rows

__all__ = ["LiteRTModel"]


class LiteRTModel:
    """A `.tflite` file in the LiteRT interpreter, with a `predict` like Keras.

    Quantized inputs and outputs are handled: float inputs are quantized with
    the file's scale and zero point, and outputs dequantized, so results
    compare directly with the Keras model's. The batch size is free.

    Args:
        model: path of a `.tflite` file, or its bytes.
        num_threads: interpreter threads.

    Example:

    ```python
    litert = LiteRTModel("model.tflite")
    litert.predict(x_val).argmax(-1)[:5]  # -> array([7, 2, 1, 0, 4])
    ```
    """

    def __init__(self, model, num_threads=1):
        from ai_edge_litert.interpreter import Interpreter

        if isinstance(model, (bytes, bytearray)):
            self._interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
        else:
            self._interpreter = Interpreter(model_path=str(model), num_threads=num_threads)
        signatures = self._interpreter.get_signature_list()
        self.signature_key = next(iter(signatures))
        self._runner = self._interpreter.get_signature_runner(self.signature_key)
        self.input_details = self._runner.get_input_details()
        self.output_details = self._runner.get_output_details()
        self.input_names = list(signatures[self.signature_key]["inputs"])
        self.output_names = list(signatures[self.signature_key]["outputs"])

    def _feed(self, inputs):
        if not isinstance(inputs, dict):
            if len(self.input_names) != 1:
                raise ValueError(
                    f"The model has inputs {self.input_names}; pass a dict of arrays."
                )
            inputs = {self.input_names[0]: inputs}
        missing = set(self.input_names) - set(inputs)
        if missing:
            raise ValueError(
                f"Missing model inputs {sorted(missing)}; the model takes {self.input_names}."
            )
        feed = {}
        for name in self.input_names:
            details = self.input_details[name]
            value = np.asarray(inputs[name])
            feed[name] = _to_tensor_dtype(value, details)
        return feed

    def __call__(self, inputs):
        """Runs one batch; returns the output array (a dict for several)."""
        outputs = self._runner(**self._feed(inputs))
        outputs = {
            name: _dequantize(outputs[name], self.output_details[name])
            for name in self.output_names
        }
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        return outputs

    def predict(self, inputs, batch_size=32):
        """Runs `inputs` (array or dict of arrays) in batches.

        Args:
            inputs: an array of samples, or a dict of arrays for models with
                several inputs.
            batch_size: samples per interpreter call.

        Returns:
            The outputs, float32 (a dict for several outputs).
        """
        n = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)
        results = []
        for start in range(0, n, batch_size):
            results.append(self(take_rows(inputs, slice(start, start + batch_size))))
        if isinstance(results[0], dict):
            return {k: np.concatenate([r[k] for r in results]) for k in results[0]}
        return np.concatenate(results)

    def timed_call(self, sample):
        """Runs one prepared feed; returns seconds spent in the interpreter."""
        start = time.perf_counter()
        self._runner(**sample)
        return time.perf_counter() - start

    def prepare(self, inputs):
        """The feed dict for `timed_call` (quantized if the file wants)."""
        return self._feed(inputs)


def _to_tensor_dtype(value, details):
    dtype = details["dtype"]
    scale, zero_point = details["quantization"]
    if np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        value = np.round(value.astype(np.float32) / scale + zero_point)
        return np.clip(value, info.min, info.max).astype(dtype)
    return value.astype(dtype)


def _dequantize(value, details):
    scale, zero_point = details["quantization"]
    if np.issubdtype(value.dtype, np.integer) and scale:
        return (value.astype(np.float32) - zero_point) * scale
    return value.astype(np.float32, copy=False)
