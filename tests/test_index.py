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
    index.save(tmp_path)  # the next save overwrites the orphaned files; the previous generation stays for readers
    assert len(HashIndex.load(tmp_path)) == 5
    generation = ["codes-{}.faiss", "files-{}.sqlite", "turns-{}.faiss"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["AETOOLS-INDEX.json", "CURRENT", *(n.format(1) for n in generation), *(n.format(2) for n in generation)]
    )
    index.save(tmp_path)  # and goes at the next switch
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["AETOOLS-INDEX.json", "CURRENT", *(n.format(2) for n in generation), *(n.format(3) for n in generation)]
    )


# ---------------------------------------------------------------------- merging indexes built separately


def library(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random packed 64-bit codes (n, 8) and their turned codes (n, 3, 8)."""
    rng = np.random.default_rng(seed)
    return pack_codes(rng.random((n, 64)) < 0.5), pack_codes(rng.random((n * 3, 64)) < 0.5).reshape(n, 3, 8)


def flipped(code: np.ndarray, bits: list[int]) -> np.ndarray:
    out = unpack_codes(code[None])
    out[0, bits] ^= True
    return pack_codes(out)[0]


def path_pairs(index: HashIndex, radius: int) -> dict[tuple[str, str], int]:
    from aetools.index.folder import candidate_pairs

    return {(index.records[a].path, index.records[b].path): d for (a, b), d in candidate_pairs(index, radius).items()}


def test_merged_shards_search_as_one_index_of_all_their_records(tmp_path):
    """Two indexes built separately (one with a removed image, so ids have gaps) merge into the index that
    one build of all the records gives: the same records under the same ids, the same search results and
    candidate pairs; a near copy whose original is in the other shard (one plain, one turned by a quarter
    turn) is a candidate pair only once merged."""
    from aetools.index.folder import DEFAULT_RADIUS
    from aetools.index.merge import merge_indexes

    codes, turns = library(40, seed=3)
    codes[30] = flipped(codes[3], [0, 17, 40])  # image 30 (second shard): an edited copy of image 3 (first)
    turns[30] = [flipped(t, [5]) for t in turns[3]]
    codes[35] = flipped(turns[7][0], [9, 60])  # image 35: image 7 turned by 90 degrees
    turns[35] = [flipped(turns[7][1], [2]), flipped(turns[7][2], []), flipped(codes[7], [33])]
    all_records = records(40)
    first, second = HashIndex(64, "model-a"), HashIndex(64, "model-a")
    first.add(all_records[:20], codes[:20], turns[:20])
    first.remove([5])
    second.add(all_records[20:], codes[20:], turns[20:])
    first.save(tmp_path / "disk1")
    second.save(tmp_path / "disk2")

    merged = merge_indexes([tmp_path / "disk1", tmp_path / "disk2"], tmp_path / "merged")
    kept = [i for i in range(40) if i != 5]
    whole = HashIndex(64, "model-a")
    whole.add([all_records[i] for i in kept], codes[kept], turns[kept])
    loaded = HashIndex.load(tmp_path / "merged", model_id="model-a")
    assert merged.records == whole.records == loaded.records  # renumbered 0..38, in source order
    for index in (merged, loaded):
        for got, want in zip(index.search(codes, 5), whole.search(codes, 5)):
            assert np.array_equal(got, want)
        assert np.array_equal(index.turns(20), whole.turns(20))
    pairs = path_pairs(loaded, DEFAULT_RADIUS)
    assert pairs == path_pairs(whole, DEFAULT_RADIUS)
    assert pairs == {("img3.jpg", "img30.jpg"): 3, ("img7.jpg", "img35.jpg"): 1}
    assert path_pairs(first, DEFAULT_RADIUS) == path_pairs(second, DEFAULT_RADIUS) == {}


def test_merge_refuses_other_models_and_conflicting_paths(tmp_path):
    """Codes of another model (or length) are not comparable: refused. A path in two sources with the same
    bytes is kept once (the first source's record); with other bytes, refused. An index already in the
    destination is never replaced unless it is one of the sources."""
    from aetools.index.merge import merge_indexes

    codes, turns = library(6, seed=4)

    def build(folder, model="model-a", bits=64, recs=None):
        index = HashIndex(bits, model)
        index.add(recs or records(3), codes[:3, : bits // 8], turns[:3, :, : bits // 8])
        index.save(tmp_path / folder)
        return tmp_path / folder

    a = build("a")
    for other in (build("b", model="model-b"), build("c", model="model-a", bits=32)):
        with pytest.raises(HashIndexError, match="another model"):
            merge_indexes([a, other], tmp_path / "out")
    assert not (tmp_path / "out" / "CURRENT").exists()

    same = build("same", recs=records(3))  # the same three files, indexed again (overlapping shards)
    merged = merge_indexes([a, same], tmp_path / "out")
    assert [r.path for r in merged.records.values()] == ["img0.jpg", "img1.jpg", "img2.jpg"]

    changed = [FileRecord("img1.jpg", 5, 6, "f" * 64)]
    stale = HashIndex(64, "model-a")
    stale.add(changed, codes[3:4], turns[3:4])
    stale.save(tmp_path / "stale")
    with pytest.raises(HashIndexError, match="img1.jpg: indexed with different contents"):
        merge_indexes([a, tmp_path / "stale"], tmp_path / "out2")
    with pytest.raises(HashIndexError, match="not among the sources"):
        merge_indexes([tmp_path / "stale"], tmp_path / "out")  # out holds the merge of a and same
    more = build("more", recs=records(3, start=10))
    merge_indexes([a, more], a)  # into one of the sources: its next generation
    assert len(HashIndex.load(a)) == 6


def test_merge_carries_images_without_turned_codes_and_the_features_caches(tmp_path):
    """An index filled without turned codes merges beside one with them (each image keeps what it had), and
    the shards' verification features (keyed by content) are all in the merged index's cache."""
    from aetools.index.merge import merge_indexes
    from aetools.index.store import FeatureCache
    from aetools.index.verify import Features

    codes, turns = library(4, seed=5)
    plain, turned = HashIndex(64, "m"), HashIndex(64, "m")
    plain.add(records(2), codes[:2])  # no turned codes
    turned.add(records(2, start=2), codes[2:], turns[2:])
    plain.save(tmp_path / "plain")
    turned.save(tmp_path / "turned")
    rng = np.random.default_rng(0)

    def features(n: int) -> Features:
        points, desc = rng.random((n, 2), dtype=np.float32), rng.integers(0, 256, (n, 32), dtype=np.uint8)
        return Features(points, desc, points[::-1].copy(), desc[::-1].copy())

    shas = [r.sha256 for r in records(4)]
    FeatureCache(tmp_path / "plain").put({shas[0]: features(5)})
    FeatureCache(tmp_path / "turned").put({shas[2]: features(7), shas[3]: features(3)})

    merged = merge_indexes([tmp_path / "turned", tmp_path / "plain"], tmp_path / "turned")  # into a source
    by_path = {r.path: i for i, r in merged.records.items()}
    assert np.array_equal(merged.turns(by_path["img3.jpg"]), turns[3])
    assert merged.turns(by_path["img0.jpg"]) is None
    assert np.array_equal(merged.code(by_path["img0.jpg"]), codes[0])
    cached = FeatureCache(tmp_path / "turned").get(set(shas))
    assert sorted(cached) == sorted([shas[0], shas[2], shas[3]])
    assert len(cached[shas[2]].keypoints) == 7 and len(cached[shas[0]].keypoints) == 5
    assert len(HashIndex.load(tmp_path / "turned")) == 4


def test_scale_simulation_plants_copies_within_the_radius_and_finds_them_all():
    """The scale benchmark's library: 1% of images are near copies (a quarter of them turned) at most
    DEFAULT_RADIUS bits from their original's code or turned code; through the multi-hash table (above
    MULTIHASH_ABOVE codes) the candidate stage finds every one, and random codes add none."""
    from aetools.bench.scale import simulate, synthetic_codes
    from aetools.index.folder import DEFAULT_RADIUS, MULTIHASH_ABOVE, hamming

    library = synthetic_codes(2000, DEFAULT_RADIUS, seed=1)
    assert len(library.planted) == 20
    turned = 0
    for original, copy in library.planted.tolist():
        views = [library.codes[original], *library.turns[original]]
        nearest = min(range(4), key=lambda r: hamming(views[r], library.codes[copy]))
        assert hamming(views[nearest], library.codes[copy]) <= DEFAULT_RADIUS
        turned += nearest > 0
    assert 0 < turned < 20

    result = simulate(2 * MULTIHASH_ABOVE, queries=20)
    assert result.planted == result.planted_found == result.candidates == 200
    assert result.search_p50 > 0 and result.candidate_peak_bytes >= result.baseline_bytes
