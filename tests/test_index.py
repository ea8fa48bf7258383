"""The hash index on disk: faiss's bit order, add/remove/search, atomic generations, model identity."""

from __future__ import annotations

import numpy as np
import pytest

from aetools.index import FileRecord, HashIndex, HashIndexError, pack_codes, unpack_codes


def records(n: int, start: int = 0) -> list[FileRecord]:
    return [FileRecord(f"img{i}.jpg", 100 + i, 10**9 + i, f"{i:064x}") for i in range(start, start + n)]


def test_bit_packing_matches_faiss():
    """Code bit i lands where faiss puts bit i: faiss.fvecs2bitvecs of the same signs gives the same bytes,
    and flipping model bit i changes faiss's Hamming distance by exactly one."""
    import faiss

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 64)).astype(np.float32)
    ours = pack_codes(x >= 0)
    theirs = np.zeros((5, 8), dtype=np.uint8)
    faiss.fvecs2bitvecs(faiss.swig_ptr(x), faiss.swig_ptr(theirs), 64, 5)
    assert np.array_equal(ours, theirs)
    assert np.array_equal(unpack_codes(ours), x >= 0)
    one_bit = np.zeros((1, 64), dtype=bool)
    one_bit[0, 13] = True
    packed = pack_codes(one_bit)
    assert packed[0, 1] == 1 << 5  # bit 13 = byte 1, bit 5 (least significant first)


def test_add_search_remove():
    index = HashIndex(64, "model-a")
    codes = pack_codes(np.random.default_rng(1).random((10, 64)) < 0.5)
    ids = index.add(records(10), codes)
    distances, found = index.search(codes[3:4], 2)
    assert found[0, 0] == ids[3] and distances[0, 0] == 0
    index.remove([int(ids[3])])
    _, found = index.search(codes[3:4], 1)
    assert found[0, 0] != ids[3] and len(index) == 9
    assert np.array_equal(index.code(int(ids[4])), codes[4])
    new = index.add(records(1, start=10), codes[3:4])
    assert new[0] == 10  # ids are never reused


def test_save_load_round_trip_and_model_identity(tmp_path):
    index = HashIndex(32, "model-a")
    codes = pack_codes(np.random.default_rng(2).random((6, 32)) < 0.5)
    index.add(records(6), codes)
    index.remove([2])
    index.save(tmp_path)
    back = HashIndex.load(tmp_path, model_id="model-a")
    assert back.records == index.records and back.bits == 32 and back.next_id == 6
    assert np.array_equal(back.search(codes, 1)[1], index.search(codes, 1)[1])
    with pytest.raises(HashIndexError, match="another model"):
        HashIndex.load(tmp_path, model_id="model-b")
    with pytest.raises(HashIndexError, match="no index"):
        HashIndex.load(tmp_path / "elsewhere")


def test_a_save_interrupted_before_the_switch_leaves_the_old_index(tmp_path, monkeypatch):
    import aetools.index.store as store

    index = HashIndex(16, "m")
    index.add(records(3), pack_codes(np.eye(3, 16, dtype=bool)))
    index.save(tmp_path)
    index.add(records(2, start=3), pack_codes(np.eye(2, 16, k=5, dtype=bool)))

    def crash(*args):
        raise KeyboardInterrupt  # the process dies after writing the new pair, before CURRENT moves

    monkeypatch.setattr(store, "_write_current", crash)
    with pytest.raises(KeyboardInterrupt):
        index.save(tmp_path)
    monkeypatch.undo()
    assert len(HashIndex.load(tmp_path)) == 3  # the previous generation, whole
    index.save(tmp_path)  # the next save overwrites the orphaned files and cleans up
    assert len(HashIndex.load(tmp_path)) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CURRENT", "codes-2.faiss", "files-2.sqlite", "turns-2.faiss"]
