"""The padding of the end-to-end search latency benchmark: each work keeps its own vectors, the first copy of the
collection is the real one, and the padding after it is made of crops of real works, never random vectors."""

import numpy as np
from find_work_latency import _by_owner, _noisy, _whole_vectors


def test_vectors_group_by_their_owner_in_any_order():
    ids = np.array([5, 3, 5, 3, 5])
    vectors = np.arange(10, dtype=np.float32).reshape(5, 2)
    grouped = _by_owner(ids, vectors)
    assert sorted(grouped) == [3, 5]
    assert grouped[3].tolist() == [[2, 3], [6, 7]]
    assert grouped[5].tolist() == [[0, 1], [4, 5], [8, 9]]


def test_the_first_copy_is_real_and_the_padding_is_real_crops_then_noisy_crops():
    rng = np.random.default_rng(0)
    whole = {1: np.array([[1.0, 0.0]], dtype=np.float32), 2: np.array([[0.0, 1.0]], dtype=np.float32)}
    crops = _noisy(rng.standard_normal((3, 2)).astype(np.float32), rng, 0.0)
    rows = [{"id": 1}, {"id": 2}] * 4
    out = _whole_vectors(rows, 0, whole, crops, rng)
    assert out[:2].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert np.allclose(out[2:5], crops)  # each crop once as it is
    assert not np.allclose(out[5:8], crops) and np.allclose(np.linalg.norm(out, axis=1), 1.0)
    assert (out[5:8] @ crops.T).diagonal().min() > 0.9  # then near the same crops, not random
