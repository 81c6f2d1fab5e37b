import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthner.corpus.windows import make_windows, merge_windows


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 2000), size=st.integers(2, 200), overlap_frac=st.floats(0, 0.9))
def test_windows_cover_and_merge_back_exactly(length, size, overlap_frac):
    overlap = min(int(size * overlap_frac), size - 1)
    windows = make_windows(length, size, overlap)
    assert windows[0][0] == 0 and windows[-1][1] == length
    assert all(0 < end - start <= size for start, end in windows)
    for (s1, e1), (s2, _) in itertools.pairwise(windows):
        assert s2 > s1 and s2 <= e1  # consecutive windows touch or overlap: no gap
    values = [np.arange(start, end) * 10 for start, end in windows]
    assert (merge_windows(length, windows, values) == np.arange(length) * 10).all()


def test_long_sentence_prefers_the_most_central_window():
    windows = make_windows(10, 6, 4)  # (0,6) (2,8) (4,10)
    values = [np.full(end - start, i) for i, (start, end) in enumerate(windows)]
    merged = merge_windows(10, windows, values)
    assert merged[0] == 0 and merged[5] == 1 and merged[9] == 2


def test_overlap_must_be_smaller_than_window():
    with pytest.raises(ValueError, match="must exceed"):
        make_windows(10, 4, 4)
