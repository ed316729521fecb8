"""Two JAX processes of one computation (`keras.distribution.initialize` with
`DataParallel`), talking over 127.0.0.1 only: every recipe ends with the
same weights in both processes, and with the weights of one process."""

import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

# The processes run JAX whatever the backend of the test run: run once.
pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.backend_independent]

# One process of the computation: runs each recipe on the same tiny data and
# saves what it ended with. argv: process id, number of processes, port, out.
WORKER = r"""
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
import jax
# Collectives between processes on CPU.
jax.config.update("jax_cpu_collectives_implementation", "gloo")
# XLA's optimizing passes are most of the compile time of these tiny
# programs (33 s of a process against 23 s without); every process of the
# comparison compiles alike.
jax.config.update("jax_disable_most_optimizations", True)
# The recipes compile the same small programs again (three fine-tuning runs,
# two ranked backbones): a cache of this process' own compiled programs
# compiles each once.
jax.config.update("jax_compilation_cache_dir", os.path.abspath(f"jax_cache{sys.argv[1]}_{sys.argv[2]}"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
import keras
import numpy as np

process_id, num_processes, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if num_processes > 1:
    keras.distribution.initialize(job_addresses=f"127.0.0.1:{port}",
                                  num_processes=num_processes, process_id=process_id)
keras.distribution.set_distribution(
    keras.distribution.DataParallel(devices=keras.distribution.list_devices()))
import keras_tl

rng = np.random.default_rng(0)
y = np.arange(48) % 2
x = (rng.uniform(0, 120, (48, 16, 16, 3)) + 120 * y[:, None, None, None]).astype("float32")
train, validation = (x[:32], y[:32]), (x[32:], y[32:])


def backbone():
    keras.utils.set_random_seed(0)
    cnn = keras_tl.build_small_cnn((16, 16, 3), 2, width=8)
    return keras.Model(cnn.input, cnn.get_layer("avg_pool").output)


def own(model):
    # This process' copy of each replicated variable.
    return [np.asarray(v.value.addressable_data(0)) for v in model.weights]


results = {}
model = keras_tl.feature_extraction(backbone(), train, validation, verbose=0)
results["feature_extraction"] = own(model)
# Saving runs in every process (Keras' rule with several processes).
model.save(f"model{process_id}.keras")
# SGD: Adam's update is the sign of tiny gradients, so it would turn the
# rounding of a sum split over processes into steps of the learning rate.
tuning = dict(epochs=2, num_groups=2, batch_size=16, optimizer="sgd", learning_rate=0.01,
              verbose=0)
model = keras_tl.fine_tune(backbone(), train, validation, **tuning)
results["fine_tune"] = own(model)


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt


# Interrupted after its first epoch, then resumed from the checkpoint; the
# processes of a run share the folder.
folder = f"run_{num_processes}"
try:
    keras_tl.fine_tune(backbone(), train, validation, checkpoint_dir=folder,
                       callbacks=[Interrupt()], **tuning)
except KeyboardInterrupt:
    print("INTERRUPTED:", sorted(os.listdir(folder)), flush=True)
resumed = keras_tl.fine_tune(backbone(), train, validation, checkpoint_dir=folder, **tuning)
own_folder = keras_tl.checkpoints.checkpoint_folder(folder)
print("RESUMED:", len(resumed.history.history["loss"]), "epochs, against",
      len(model.history.history["loss"]), "; left:", os.path.exists(own_folder), flush=True)
results["fine_tune_resumed"] = own(resumed)
keras.utils.set_random_seed(0)
teacher = keras_tl.build_small_cnn((16, 16, 3), 2, width=8)
student = keras_tl.build_small_cnn((16, 16, 3), 2, width=4, name="student")
model = keras_tl.distill(teacher, student, train, epochs=2, batch_size=16,
                         optimizer="sgd", learning_rate=0.01, verbose=0)
results["distill"] = own(model)
keras.utils.set_random_seed(0)
classifier = keras_tl.build_small_cnn((16, 16, 3), 2, width=8)
classifier.compile("sgd", "sparse_categorical_crossentropy")
model = keras_tl.adapt_domain(classifier, train, x[32:], method="coral", epochs=1,
                              batch_size=16, optimizer="sgd", learning_rate=0.01, verbose=0)
results["adapt_domain"] = own(model)
ranking = keras_tl.rank_backbones({"a": backbone(), "b": backbone()}, train, verbose=0)
results["rank_backbones"] = [np.array([s.score for s in ranking])]
features, _ = keras_tl.extract(backbone(), train)
results["extract"] = [features]
np.savez(out, **{f"{name}/{i}": value for name, values in results.items()
                 for i, value in enumerate(values)})
print("done", process_id, flush=True)
"""


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(args, tmp_path, name, env):
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, "-c", WORKER, *map(str, args)], stdout=log,
                            stderr=subprocess.STDOUT, cwd=tmp_path, env=env), log


def test_two_processes_end_with_the_weights_of_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_DISTRIBUTION")}
    env.update(KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3",
               # Every process sees one CPU device: the two processes make a
               # mesh of two devices, as the single process' two host devices.
               XLA_FLAGS="--xla_force_host_platform_device_count=1")
    port = _free_port()
    runs = {f"process{i}": _start([i, 2, port, tmp_path / f"process{i}.npz"], tmp_path,
                                  f"process{i}", env) for i in range(2)}
    single_env = dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    runs["single"] = _start([0, 1, 0, tmp_path / "single.npz"], tmp_path, "single", single_env)
    try:
        for name, (process, log) in runs.items():
            process.wait(timeout=480)
            log.close()
    finally:
        for process, _ in runs.values():
            if process.poll() is None:
                process.kill()
    for name, (process, _) in runs.items():
        assert process.returncode == 0, (tmp_path / f"{name}.log").read_text()[-4000:]
    for name, folder in [("process0", "keras_tl_checkpoint_process0"),
                         ("process1", "keras_tl_checkpoint_process1"),
                         ("single", "keras_tl_checkpoint")]:
        log = (tmp_path / f"{name}.log").read_text()
        # Each process checkpoints into a folder of its own, resumes the
        # whole run from it, and removes it at the end.
        interrupted = re.search(r"INTERRUPTED: \[(.*)\]", log)
        assert interrupted and f"'{folder}'" in interrupted.group(1), log[-3000:]
        resumed = re.search(r"RESUMED: (\d+) epochs, against (\d+) ; left: False", log)
        assert resumed and resumed.group(1) == resumed.group(2), log[-3000:]
    for i in range(2):
        assert (tmp_path / f"model{i}.keras").exists()
    first, second, single = (np.load(tmp_path / f"{n}.npz")
                             for n in ("process0", "process1", "single"))
    assert set(first.files) == set(single.files)
    gaps = {}
    for key in first.files:
        # Both processes hold the same values, bit for bit ...
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
        name = key.split("/")[0]
        gaps[name] = max(gaps.get(name, 0.0), float(np.abs(first[key] - single[key]).max()))
    print("largest difference from one process:", gaps)
    # ... and those of one process over two devices, up to the order of
    # float sums, which training carries on (measured: 0 for the closed-form
    # head, distillation, adapt_domain and the embeddings; 3e-4 after a few
    # SGD steps of fine_tune, against weights of about 0.1).
    assert max(gaps.values()) < 5e-3, gaps
    recipes = {key.split("/")[0] for key in first.files}
    assert recipes == {"feature_extraction", "fine_tune", "fine_tune_resumed", "distill",
                       "adapt_domain", "rank_backbones", "extract"}
