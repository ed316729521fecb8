"""The error raised when a model needs ops outside TFLite's builtin set."""

__all__ = ["UnsupportedOpsError"]


class UnsupportedOpsError(ValueError):
    """The model uses TensorFlow ops that TFLite's builtin op set lacks.

    Args:
        ops: names of the TensorFlow ops (e.g. `["MatrixDeterminant"]`).
        layers: names of the layers that use them, where the converter says.

    Example:

    ```python
    try:
        to_tflite(model, "model.tflite")
    except UnsupportedOpsError as error:
        print(error.ops)  # -> ['MatrixDeterminant']
    ```
    """

    def __init__(self, ops, layers=()):
        self.ops = list(ops)
        self.layers = list(layers)
        where = f" (in layer {', '.join(self.layers)})" if self.layers else ""
        super().__init__(
            f"The model uses TensorFlow ops that are not TFLite builtins: "
            f"{', '.join(self.ops) or 'unknown'}{where}. Replace them with "
            "builtin ops, or pass allow_select_tf_ops=True to add "
            "tf.lite.OpsSet.SELECT_TF_OPS (the app then needs the Flex "
            "delegate, several MB, and the Python ai_edge_litert interpreter "
            "cannot run the file)."
        )
