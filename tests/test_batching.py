"""The one pad-to-bucket rule: bucket sizes and padding fills, numpy and jax alike."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from mazeagent.batching import bucket, pad_rows, pad_to_bucket


def test_bucket_is_a_capped_power_of_two_above_a_minimum():
    assert [bucket(n) for n in (0, 1, 2, 3, 5, 64, 65)] == [1, 1, 2, 4, 8, 64, 128]
    assert [bucket(n, 16, 256) for n in (1, 16, 17, 200, 256)] == [16, 16, 32, 256, 256]
    assert bucket(3, 64) == 64


def test_pad_rows_fills():
    a = np.array([[1, 2], [3, 4], [5, 6]], np.int32)
    np.testing.assert_array_equal(pad_rows(a, 5), [[1, 2], [3, 4], [5, 6], [0, 0], [0, 0]])
    np.testing.assert_array_equal(pad_rows(a, 4, "first")[3], [1, 2])
    np.testing.assert_array_equal(pad_rows(a, 4, "last")[3], [5, 6])
    assert pad_rows(a, 4).dtype == np.int32 and isinstance(pad_rows(a, 4), np.ndarray)
    empty = pad_to_bucket(np.zeros((0, 2), bool), 8, fill="first")
    assert empty.shape == (8, 2) and not empty.any()
    j = pad_to_bucket(jnp.ones((3, 2)), 4)
    assert not isinstance(j, np.ndarray) and j.shape == (4, 2) and float(j[3].sum()) == 0
    with pytest.raises(ValueError, match="cannot pad"):
        pad_rows(a, 2)
    with pytest.raises(ValueError, match="fill"):
        pad_rows(a, 4, "mean")
