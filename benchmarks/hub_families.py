"""Check: which KerasHub image families work as keras-tl backbones.

No preset can be downloaded here, so each family is a tiny network built from
its constructor and saved as a local preset folder (`Backbone.save_to_preset`
+ `ImageConverter.save_to_preset`), the same files a downloaded preset has.
For each family, one row of a Markdown table:

- built: `keras_tl.build_backbone(folder)` gives a model from raw [0, 255]
  images whose preprocessing equals the converter's output;
- pooled: the pooling the family got and the feature width;
- staged: the stages `keras_tl.get_stages` finds, and `fine_tune` ran one
  epoch of them (stages unfreezing, discriminative rates);
- LoRA: adapters enabled on the dense kernels, then merged with predictions
  unchanged (to 1e-5) and no `lora_*` variable left (transformers only:
  CNNs have no dense kernels);
- exported: `keras_tl.to_tflite` of the fine-tuned classifier, the largest
  difference between LiteRT and Keras outputs on 16 images (TensorFlow
  backend only).

Run: `nice python benchmarks/hub_families.py [--families vit,resnet]`
"""

import argparse
import os
import tempfile
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_tl  # noqa: E402
from keras_tl import hub_backbones  # noqa: E402
from keras_tl.lora import enable_lora  # noqa: E402
from keras_tl.lora import merge_lora  # noqa: E402
from keras_tl.recipes.fine_tuning import fine_tune  # noqa: E402

SIZE = 32


def _transformer_kwargs():
    return dict(patch_size=8, num_layers=2, num_heads=2, hidden_dim=32)


def tiny_families():
    """`{family: (make_backbone, converter_class_name)}` of tiny networks."""
    import keras_hub

    m = keras_hub.models
    shape = (SIZE, SIZE, 3)

    def siglip():
        vision = m.SigLIPVisionEncoder(
            patch_size=8, hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64,
            image_shape=shape)
        text = m.SigLIPTextEncoder(
            vocabulary_size=50, embedding_dim=32, hidden_dim=32, num_layers=1,
            num_heads=2, intermediate_dim=64, max_sequence_length=8)
        return m.SigLIPBackbone(vision, text)

    def clip():
        vision = m.CLIPVisionEncoder(
            patch_size=8, hidden_dim=32, num_layers=2, num_heads=2, intermediate_dim=64,
            image_shape=shape)
        text = m.CLIPTextEncoder(
            vocabulary_size=50, embedding_dim=32, hidden_dim=32, num_layers=1,
            num_heads=2, intermediate_dim=64, max_sequence_length=8)
        return m.CLIPBackbone(vision, text, projection_dim=16)

    return {
        "vit": (lambda: m.ViTBackbone(image_shape=shape, mlp_dim=64, **_transformer_kwargs()),
                "ViTImageConverter"),
        "deit": (lambda: m.DeiTBackbone(image_shape=shape, intermediate_dim=64,
                                        **_transformer_kwargs()), "DeiTImageConverter"),
        "dinov2": (lambda: m.DINOV2Backbone(
            intermediate_dim=64, image_shape=shape, position_embedding_shape=shape,
            num_register_tokens=2, **_transformer_kwargs()), "DINOV2ImageConverter"),
        "dinov3": (lambda: m.DINOV3Backbone(intermediate_dim=64, image_shape=shape,
                                            **_transformer_kwargs()), "DINOV3ImageConverter"),
        "siglip": (siglip, "SigLIPImageConverter"),
        "clip": (clip, "CLIPImageConverter"),
        "resnet": (lambda: m.ResNetBackbone(
            input_conv_filters=[64], input_conv_kernel_sizes=[7],
            stackwise_num_filters=[64, 64], stackwise_num_blocks=[1, 1],
            stackwise_num_strides=[1, 2], block_type="basic_block"), "ResNetImageConverter"),
        "densenet": (lambda: m.DenseNetBackbone(stackwise_num_repeats=[1, 1, 1, 1],
                                                growth_rate=8), "DenseNetImageConverter"),
        "vgg": (lambda: m.VGGBackbone(stackwise_num_repeats=[1, 1],
                                      stackwise_num_filters=[8, 16]), "VGGImageConverter"),
        "efficientnet": (lambda: m.EfficientNetBackbone(
            stackwise_kernel_sizes=[3, 3], stackwise_num_repeats=[1, 1],
            stackwise_input_filters=[16, 16], stackwise_output_filters=[16, 24],
            stackwise_expansion_ratios=[1, 4], stackwise_squeeze_and_excite_ratios=[0.25, 0.25],
            stackwise_strides=[1, 2], stackwise_block_types=["unfused", "unfused"],
            # num_features stays at its default 1280: KerasHub 0.32 leaves it
            # out of the saved config, so another value does not reload.
            stackwise_width_coefficients=[1.0, 1.0], stackwise_depth_coefficients=[1.0, 1.0]),
            "EfficientNetImageConverter"),
        "mobilenet": (lambda: m.MobileNetBackbone(
            stackwise_expansion=[[16], [32, 32]], stackwise_num_blocks=[1, 2],
            stackwise_num_filters=[[16], [24, 24]], stackwise_kernel_size=[[3], [5, 5]],
            stackwise_num_strides=[[2], [2, 1]], stackwise_se_ratio=[[None], [0.25, 0.25]],
            stackwise_activation=[["relu"], ["hard_swish", "hard_swish"]],
            stackwise_padding=[[1], [2, 2]], output_num_filters=64, depthwise_filters=8,
            depthwise_stride=2, depthwise_residual=False, last_layer_filter=64,
            squeeze_and_excite=0.5), "MobileNetImageConverter"),
        "xception": (lambda: m.XceptionBackbone(
            stackwise_conv_filters=[[8, 16], [16, 32], [32, 32]],
            stackwise_pooling=[True, True, False]), "XceptionImageConverter"),
        "cspnet": (lambda: m.CSPNetBackbone(
            stem_filters=8, stem_kernel_size=3, stem_strides=1, stackwise_depth=[1, 1],
            stackwise_strides=[1, 2], stackwise_num_filters=[16, 32], block_type="dark_block",
            stage_type="dark"),
            "CSPNetImageConverter"),
        "hgnetv2": (lambda: m.HGNetV2Backbone(
            depths=[1, 1], embedding_size=16, hidden_sizes=[32, 64], stem_channels=[3, 8, 16],
            hidden_act="relu", use_learnable_affine_block=False,
            stackwise_stage_filters=[(16, 8, 32, 1, 1, 3), (32, 16, 64, 1, 1, 3)],
            apply_downsample=[False, True], use_lightweight_conv_block=[False, False],
            image_shape=(None, None, 3)), "HGNetV2ImageConverter"),
    }


def save_preset(family, make, converter_name, root):
    import keras_hub

    folder = os.path.join(root, family)
    keras.utils.set_random_seed(0)
    make().save_to_preset(folder)
    converter = getattr(keras_hub.layers, converter_name)(
        image_size=(SIZE, SIZE), scale=1 / 127.5, offset=-1.0)
    converter.save_to_preset(folder)
    return folder


def color_images(n, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.uniform(0, 255, (n, SIZE, SIZE, 3))
    red = labels[:, None, None] == 0
    images[..., 0] = np.where(red, 128 + images[..., 0] / 2, images[..., 0] / 2)
    return images.astype("float32"), labels


def check(family, folder):
    import keras_hub

    row = {"family": family}
    x, y = color_images(48)
    model = keras_tl.build_backbone(folder)
    converter = keras_hub.layers.ImageConverter.from_preset(folder)
    diff = np.abs(keras.ops.convert_to_numpy(model.get_layer("preprocessing")(x[:4]))
                  - keras.ops.convert_to_numpy(converter(x[:4]))).max()
    _, network = hub_backbones.find_hub_network(model)
    row["built"] = f"{type(network).__name__}, preprocessing diff {diff:.0e}"
    pool = [l for l in model.layers if l.name.endswith("_pool")]
    row["pooled"] = (f"{pool[0].name.replace('_pool', '')}" if pool else "own head") + \
        f", {model.output_shape[-1]}-d"
    stages = keras_tl.get_stages(model)
    names = [s.name for s in stages]
    row["stages"] = ", ".join(names) if len(names) <= 5 else \
        f"{names[0]}, {names[1]} ... {names[-1]} ({len(names)})"
    start = time.perf_counter()
    tuned = fine_tune(folder, (x[:32], y[:32]), epochs=1, batch_size=16, verbose=0,
                      initially_trainable=len(stages))
    row["fine_tune"] = f"{time.perf_counter() - start:.0f} s"
    if hub_backbones.hub_family(network).kind == "transformer":
        lora_model = keras_tl.build_backbone(folder)
        layers = enable_lora(lora_model, 2)
        rng = np.random.default_rng(1)
        for layer in layers:
            layer.lora_kernel_b.assign(rng.normal(0, 0.1, layer.lora_kernel_b.shape))
        before = lora_model.predict(x[:8], verbose=0)
        merge_lora(lora_model)
        left = [v.path for v in lora_model.weights if "lora" in v.path]
        after_diff = np.abs(lora_model.predict(x[:8], verbose=0) - before).max()
        row["lora"] = f"{len(layers)} kernels, merge diff {after_diff:.0e}" + (
            f", {len(left)} lora vars left" if left else "")
    else:
        row["lora"] = "n/a (no dense kernels)"
    if keras.backend.backend() == "tensorflow":
        with tempfile.TemporaryDirectory() as out:
            report = keras_tl.to_tflite(tuned, os.path.join(out, f"{family}.tflite"),
                                        check_data=(x[32:], y[32:]))
        row["exported"] = f"LiteRT diff {report.max_abs_diff:.0e}"
    else:
        row["exported"] = "(TensorFlow only)"
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default=None, help="comma-separated subset")
    args = parser.parse_args()
    families = tiny_families()
    chosen = args.families.split(",") if args.families else list(families)
    columns = ["family", "built", "pooled", "stages", "fine_tune", "lora", "exported"]
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for family in chosen:
            make, converter_name = families[family]
            try:
                folder = save_preset(family, make, converter_name, root)
                rows.append(check(family, folder))
            except Exception as error:  # a family that fails is a row, not a stop
                traceback.print_exc()
                rows.append({"family": family, "built": f"FAILED: {type(error).__name__}: "
                             f"{str(error).splitlines()[0][:120]}"})
            print(rows[-1], flush=True)
    print()
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")


if __name__ == "__main__":
    main()
