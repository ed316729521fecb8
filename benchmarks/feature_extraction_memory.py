"""Peak memory of feature extraction on 20,000 images at 96 px.

`keras_tl.recipes.feature_extraction` on a folder of 20,000 PNG images
(real MNIST digits, 96x96 RGB, 10 class folders), streamed from disk. With
`cache_dir` the embeddings go to a `.npy` memory map batch by batch and the
closed-form head reads them in place; without it they are gathered in
memory. Each run is its own process; a thread samples its resident memory
every 20 ms. Two figures:

- the peak above the process after its imports (Python, TensorFlow and
  Keras loaded, about 0.7 GB that any Keras program pays);
- the peak above the same process once the same recipe has run on 500
  other images: TensorFlow's runtime (thread pools and their allocator
  arenas, oneDNN kernels, tf.data workers) is then started;
- the peak above that 500-image run's own peak: what the 20,000 images
  cost beyond what the recipe needs on any data set (the runtime, and the
  forward pass's activations for one batch, which keras-tl hands back to
  the system between phases, so the process's size after a run no longer
  holds them). The bar applies to this one: under 2 x (embeddings + model
  weights).

Run: `.venv/bin/python benchmarks/feature_extraction_memory.py [--images 20000]`
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MB = 2**20


def resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakSampler:
    def __init__(self, interval=0.02):
        self.interval = interval
        self.peak = resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, resident_bytes())
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_bytes())


def write_images(folder, count, size):
    """Writes `count` digit images as `folder/<digit>/<i>.png` once."""
    import numpy as np
    from PIL import Image

    from keras_tl.examples.datasets import load_mnist_5k

    marker = os.path.join(folder, f".complete-{count}-{size}")
    if os.path.exists(marker):
        return
    x, y = load_mnist_5k()
    for digit in range(10):
        os.makedirs(os.path.join(folder, str(digit)), exist_ok=True)
    # A fixed shuffle, so any count has every digit.
    order = np.random.default_rng(0).permutation(len(x))
    for i in range(count):
        # Each 5,000-digit round is shifted a pixel, so no two files repeat.
        shift, index = i // len(x), order[i % len(x)]
        image = Image.fromarray(x[index].squeeze().astype("uint8"))
        image = image.transform(image.size, Image.AFFINE, (1, 0, -shift, 0, 1, 0))
        image = image.resize((size, size)).convert("RGB")
        image.save(os.path.join(folder, str(int(y[index])), f"{i:05d}.png"))
    open(marker, "w").close()


def child(args):
    import keras

    from keras_tl.recipes import feature_extraction

    def run(folder):
        cache_dir = tempfile.mkdtemp(prefix="keras_tl_cache_") if args.mode == "memmap" else None
        return feature_extraction(
            args.backbone, folder, weights=None, input_shape=(args.size, args.size, 3),
            cache_dir=cache_dir, verbose=0,
        )

    start_memory = resident_bytes()
    with PeakSampler() as warm_sampler:
        run(args.warm_folder)
    warm_memory = resident_bytes()
    start = time.perf_counter()
    with PeakSampler() as sampler:
        model = run(args.folder)
    seconds = time.perf_counter() - start
    backbone = model.layers[1]
    feature_dim = int(backbone.output.shape[-1])
    weights = sum(int(keras.ops.size(w)) * 4 for w in model.weights)
    print(json.dumps({
        "seconds": seconds,
        "peak_above_start": sampler.peak - start_memory,
        "peak_above_warm": sampler.peak - warm_memory,
        "peak_above_warm_peak": sampler.peak - warm_sampler.peak,
        "embeddings": args.images * feature_dim * 4,
        "model": weights,
    }))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--folder", default=os.path.join(tempfile.gettempdir(),
                                                         "keras_tl_memory_images"))
    parser.add_argument("--warm-folder", default=os.path.join(tempfile.gettempdir(),
                                                              "keras_tl_memory_images_500"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="memmap", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    write_images(args.folder, args.images, args.size)
    write_images(args.warm_folder, 500, args.size)
    rows = []
    for mode, title in [("memmap", "cache_dir (memory-mapped embeddings)"),
                        ("memory", "no cache_dir (embeddings in memory)")]:
        run = subprocess.run(
            [sys.executable, __file__, "--child", "--mode", mode, "--images", str(args.images),
             "--size", str(args.size), "--backbone", args.backbone, "--folder", args.folder,
             "--warm-folder", args.warm_folder],
            capture_output=True, text=True,
        )
        if run.returncode:
            sys.exit(f"The {mode} run failed:\n{run.stderr[-3000:]}")
        rows.append((title, json.loads(run.stdout.strip().splitlines()[-1])))
    print(f"\n{args.backbone}, {args.images} images at {args.size} px from a folder, "
          f"{os.cpu_count()} CPU cores")
    print("| embeddings | seconds | peak above start (MB) | peak above the process after "
          "a 500-image run (MB) | peak above the 500-image run's peak (MB) | embeddings (MB) | "
          "model (MB) | bar: 2 x (embeddings + model) (MB) | peak above 500-image peak / bar |")
    print("|---|---|---|---|---|---|---|---|---|")
    for title, r in rows:
        bar = 2 * (r["embeddings"] + r["model"])
        print(f"| {title} | {r['seconds']:.0f} | {r['peak_above_start'] / MB:.0f} | "
              f"{r['peak_above_warm'] / MB:.0f} | {r['peak_above_warm_peak'] / MB:.0f} | "
              f"{r['embeddings'] / MB:.0f} | {r['model'] / MB:.0f} | {bar / MB:.0f} | "
              f"{r['peak_above_warm_peak'] / bar:.2f} |")


if __name__ == "__main__":
    main()
