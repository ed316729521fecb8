"""Returning freed heap memory to the system (keras_tl._utils.memory)."""

import ctypes.util

import pytest

from keras_tl._utils import memory


@pytest.mark.backend_independent
def test_release_trims_the_heap_at_most_once_per_interval(monkeypatch):
    if ctypes.util.find_library("c") is None:
        pytest.skip("no C library to trim")
    calls = []
    trim = memory._malloc_trim()
    monkeypatch.setattr(memory, "_malloc_trim", lambda: lambda pad: calls.append(pad) or trim(pad))
    monkeypatch.setattr(memory, "_LAST_RELEASE", [float("-inf")])
    assert isinstance(memory.release_free_heap(), bool)
    # Within `every` seconds of the last release nothing is called.
    assert memory.release_free_heap(every=3600) is False
    assert calls == [0]
    monkeypatch.setattr(memory, "_LAST_RELEASE", [float("-inf")])
    memory.release_free_heap(every=3600)
    assert calls == [0, 0]


@pytest.mark.backend_independent
def test_release_is_a_no_op_without_malloc_trim(monkeypatch):
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    monkeypatch.setattr(memory, "_LAST_RELEASE", [float("-inf")])
    assert memory.release_free_heap() is False
