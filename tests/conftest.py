"""Test-session set-up shared by every test file."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so tests can run code under a real
# `tf.distribute.MirroredStrategy`. This must happen before any TF op runs.
_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:
    # Already initialized (e.g. by a plugin): MirroredStrategy tests then
    # see whatever devices exist.
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that takes more than ~20 s")
