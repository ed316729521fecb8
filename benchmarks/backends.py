"""Benchmark: the demo on TensorFlow, JAX and PyTorch, side by side in one run.

Runs `keras_tl.examples.demo.run_demo` (5 labels per class, one seed, every
method, no LiteRT rows) once per Keras backend, one after the other, each in
a process of its own on the same cores, and prints held-out accuracy and
seconds per run for each backend. One seed: differences of a point or two
are within a seed's noise.

    python benchmarks/backends.py [--labels 5] [--backends tensorflow,jax,torch]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

RUN = r"""
import json, sys
from keras_tl.examples.demo import run_demo
rows = run_demo(labels_per_class=[int(sys.argv[1])], seeds=[0], out_dir=sys.argv[2],
                export_rows=False, verbose=0, workers=1)
print("ROWS" + json.dumps(rows))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=int, default=5)
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    args = parser.parse_args()
    backends = args.backends.split(",")
    results, wall = {}, {}
    for backend in backends:
        out = tempfile.mkdtemp(prefix=f"keras_tl_demo_{backend}_")
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", RUN, str(args.labels), out], env=env,
                              capture_output=True, text=True, timeout=1800)
        wall[backend] = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{backend} failed:\n{done.stderr[-3000:]}")
        line = [l for l in done.stdout.splitlines() if l.startswith("ROWS")][-1]
        results[backend] = {row["method"]: row for row in json.loads(line[4:])}
    methods = list(results[backends[0]])
    print(f"\nDemo, {args.labels} labels per class, one seed, one process per backend\n")
    print("| method | " + " | ".join(f"{b} accuracy" for b in backends) + " | "
          + " | ".join(f"{b} s/run" for b in backends) + " |")
    print("|---|" + "---|" * (2 * len(backends)))
    for method in methods:
        accuracy = " | ".join(f"{results[b][method]['mean']:.3f}" for b in backends)
        seconds = " | ".join(f"{results[b][method]['seconds']:.1f}"
                             if results[b][method]["seconds"] else "-" for b in backends)
        print(f"| {method} | {accuracy} | {seconds} |")
    print("| whole demo (wall clock) | " + " | " * (len(backends) - 1) + " | "
          + " | ".join(f"{wall[b]:.0f} s" for b in backends) + " |")


if __name__ == "__main__":
    main()
