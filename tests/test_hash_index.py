"""hash-index / hash-search / dedup: round trips, incremental updates, refusals, output shapes; the shipped
model finds edited copies of bundled photos."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aetools.index.folder import index_folder, pairs_within, search_codes
from aetools.index.store import FileRecord, HashIndex, pack_codes
from tests.conftest import photo, run, save_tiny, tiny_model

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    folder = tmp_path / "pictures"
    folder.mkdir()
    for name in PHOTOS[:4]:
        Image.fromarray(photo(160, name)).save(folder / f"{name}.jpg", quality=90)
    return folder


def tiny_hash_weights(path: Path, seed: int = 0) -> Path:
    import torch

    torch.manual_seed(seed)
    model = tiny_model("hash-unet", widths=(8, 16), bits=32, size=32)
    if seed:
        for p in model.parameters():
            p.data.add_(torch.randn_like(p) * 0.1)
    return save_tiny(model, "hash", path)


@pytest.fixture
def tiny_hash(tmp_path: Path) -> Path:
    return tiny_hash_weights(tmp_path / "tiny-hash.safetensors")


def load(path: Path):
    from aetools.weights import load_model

    return load_model(path, "hash")


def test_index_then_search_finds_each_indexed_image_at_distance_zero(pictures, tiny_hash):
    r = run("hash-index", pictures, "-m", tiny_hash)
    assert r.exit_code == 0, r.output
    assert (pictures / ".aetools-index" / "CURRENT").exists()
    queries = sorted(pictures.glob("*.jpg"))
    r = run("hash-search", *queries, "-m", tiny_hash, "--index", pictures / ".aetools-index", "-k", "4", "--json")
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert [line["query"] for line in lines] == [str(q) for q in queries]
    for line, query in zip(lines, queries):
        assert set(line) == {"query", "results"} and len(line["results"]) == 4
        assert all(set(m) == {"path", "distance"} and isinstance(m["distance"], int) for m in line["results"])
        distances = [m["distance"] for m in line["results"]]
        assert distances == sorted(distances)
        found = {m["path"]: m["distance"] for m in line["results"]}
        assert found[str(query.resolve())] == 0


def test_search_finds_the_index_of_the_folder_its_query_lies_in(pictures, tiny_hash, tmp_path, monkeypatch):
    """As the cheat-sheet runs it: hash-index FOLDER, then hash-search QUERY from anywhere, no --index."""
    assert run("hash-index", pictures, "-m", tiny_hash, "-r").exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working folder plays no part
    r = run("hash-search", pictures / "coffee.jpg", "-m", tiny_hash, "-k", "4", "--json")
    assert r.exit_code == 0, r.output
    assert {"path": str((pictures / "coffee.jpg").resolve()), "distance": 0} in json.loads(r.stdout)["results"]
    (pictures / "sub").mkdir()
    Image.fromarray(photo(160, "coffee")[:, ::-1].copy()).save(pictures / "sub" / "mirrored.jpg")
    r = run("hash-search", pictures / "sub" / "mirrored.jpg", "-m", tiny_hash, "-k", "4", "--json")
    assert r.exit_code == 0, r.output  # the nearest index above a query in a sub-folder
    assert len(json.loads(r.stdout)["results"]) == 4


def test_search_without_an_index_says_what_to_pass(pictures, tiny_hash, tmp_path, monkeypatch):
    assert run("hash-index", pictures, "-m", tiny_hash).exit_code == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.fromarray(photo(160, "coffee")).save(outside / "query.jpg")
    monkeypatch.chdir(pictures)  # not even from inside an indexed folder: the query decides
    r = run("hash-search", outside / "query.jpg", "-m", tiny_hash)
    assert r.exit_code == 2
    (line,) = r.output.strip().splitlines()
    assert line == (
        f"error: {outside / 'query.jpg'}: no .aetools-index in its folder or above it; pass --index FOLDER (a"
        " folder indexed by aetools hash-index, or its .aetools-index)"
    )
    r = run("hash-search", outside / "query.jpg", "-m", tiny_hash, "--index", pictures, "-k", "1")
    assert r.exit_code == 0, r.output  # --index FOLDER: the folder's index, as dedup FOLDER finds it
    other = tmp_path / "other"
    other.mkdir()
    Image.fromarray(photo(160, "rocket")).save(other / "rocket.jpg")
    assert run("hash-index", other, "-m", tiny_hash).exit_code == 0
    r = run("hash-search", pictures / "coffee.jpg", other / "rocket.jpg", "-m", tiny_hash)
    assert r.exit_code == 2 and "pass --index FOLDER to choose one" in r.output


def test_update_adds_reencodes_and_drops(pictures, tiny_hash):
    model = load(tiny_hash)
    index, report = index_folder(model, pictures)
    assert (report.added, len(index)) == (4, 4)

    Image.fromarray(photo(160, "immunohistochemistry")).save(pictures / "new.png")  # added
    os.replace(pictures / "rocket.jpg", pictures / "renamed.jpg")  # moved: same bytes, new name
    (pictures / "chelsea.jpg").unlink()  # deleted
    Image.fromarray(np.asarray(Image.open(pictures / "coffee.jpg"))[::-1].copy()).save(pictures / "coffee.jpg")
    stat = (pictures / "astronaut.jpg").stat()
    os.utime(pictures / "astronaut.jpg", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched only
    before = {Path(r.path).name: index.code(i).copy() for i, r in index.records.items()}

    index, report = index_folder(model, pictures, update=True)
    assert (report.added, report.moved, report.removed, report.changed, report.kept) == (1, 1, 1, 2, 0)
    codes = {Path(r.path).name: index.code(i) for i, r in index.records.items()}
    assert sorted(codes) == ["astronaut.jpg", "coffee.jpg", "new.png", "renamed.jpg"]
    assert np.array_equal(codes["renamed.jpg"], before["rocket.jpg"])  # the moved file kept its code
    assert np.array_equal(codes["astronaut.jpg"], before["astronaut.jpg"])
    flipped = pack_codes(model.codes(_tensor(pictures / "coffee.jpg", model)).numpy())[0]
    assert np.array_equal(codes["coffee.jpg"], flipped)  # the edited file was encoded again

    index, report = index_folder(model, pictures, update=True)  # nothing changed: nothing read
    assert (report.kept, report.added, report.changed) == (4, 0, 0)


def _tensor(path: Path, model):
    from aetools.index.encode import tensor_for_code

    return tensor_for_code(path, model.config.size)[None]


def test_an_index_from_another_model_is_refused(pictures, tiny_hash, tmp_path):
    other = tiny_hash_weights(tmp_path / "other.safetensors", seed=1)
    assert run("hash-index", pictures, "-m", tiny_hash).exit_code == 0
    r = run("hash-search", pictures / "coffee.jpg", "-m", other, "--index", pictures / ".aetools-index")
    assert r.exit_code == 2 and "built with another model" in r.output
    r = run("hash-index", pictures, "--update", "-m", other)
    assert r.exit_code == 2 and "built with another model" in r.output


def test_bad_files_are_reported_and_the_rest_indexed(pictures, tiny_hash):
    (pictures / "broken.jpg").write_bytes(b"not a JPEG")
    r = run("hash-index", pictures, "-m", tiny_hash)
    assert r.exit_code == 1
    assert "broken.jpg" in r.output and "not an image" in r.output
    assert "indexed 4 images" in r.output
    r = run("hash-search", pictures / "missing.jpg", pictures / "coffee.jpg", "-m", tiny_hash, "--json")
    assert r.exit_code == 1 and "missing.jpg" in r.output
    assert json.loads(r.stdout.splitlines()[1])["results"]  # the good query still answered


def test_exact_copies_are_reported_and_dedup_writes_json_and_html(pictures, tiny_hash, tmp_path):
    (pictures / "copy.jpg").write_bytes((pictures / "coffee.jpg").read_bytes())
    r = run("hash-index", pictures, "-m", tiny_hash)
    assert r.exit_code == 0 and "exact copies" in r.output
    out_json, out_html = tmp_path / "dups.json", tmp_path / "dups.html"
    r = run("dedup", pictures, "--radius", "0", "-m", tiny_hash, "--json", out_json, "--html", out_html)
    assert r.exit_code == 0, r.output
    report = json.loads(out_json.read_text())
    (group,) = report["groups"]  # the exact copy; no other photo is confirmed as a copy
    keys = {"path", "keep", "distance", "matches", "exact", "width", "height", "bytes", "modified", "reason"}
    assert all(set(m) == keys for m in group)
    assert Path(group[0]["path"]).name == "coffee.jpg"  # same bytes: the older file, then the first by path
    assert group[1]["reason"] in ("is newer", "ties in every respect (kept by path)")
    assert group[0]["reason"] in (
        "original: the others are newer",
        "original: the others tie in every respect (first by path)",
    )
    assert {Path(m["path"]).name for m in group if m["exact"]} == {"coffee.jpg", "copy.jpg"}
    assert [m["keep"] for m in group] == [True, False] and group[1]["matches"] >= 16
    assert report["suggested_to_remove"] == [group[1]["path"]] and report["failures"] == []
    assert (group[0]["width"], group[0]["height"]) == (160, 160)
    page = out_html.read_text()
    assert page.count("data:image/jpeg;base64,") >= 2 and "<img" in page and 'src="http' not in page
    assert Path(group[0]["path"]).resolve().as_uri() in page and "Suggested to remove (1 files)" in page


def test_multi_hash_table_finds_exactly_the_pairs_a_full_scan_finds():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (600, 8), dtype=np.uint8)
    codes[300:] = codes[:300]
    bits = np.unpackbits(codes[300:], axis=1)
    for row, k in zip(bits, rng.integers(0, 8, 300)):  # copies 0-7 bits away
        row[rng.choice(64, size=k, replace=False)] ^= 1
    codes[300:] = np.packbits(bits, axis=1)
    for radius in (3, 5, 7):  # 4 substrings of 16 bits, then with 1 bit flipped in each
        scan = set(zip(*map(np.ndarray.tolist, pairs_within(codes, 64, radius, "scan"))))
        table = set(zip(*map(np.ndarray.tolist, pairs_within(codes, 64, radius, "multihash"))))
        assert scan == table and len(scan) >= 100
        assert all(i < j and d <= radius for i, j, d in scan)


def test_orientation_search_keeps_each_images_nearest_orientation():
    index = HashIndex(16, "m")
    stored = np.array([[0, 0], [255, 255], [15, 0]], dtype=np.uint8)
    index.add([FileRecord(f"{n}.jpg", 1, 1, str(n)) for n in range(3)], stored)
    views = np.zeros((1, 8, 2), dtype=np.uint8)
    views[0, :, :] = [255, 0]  # 8 bits from 0.jpg and from 1.jpg, 4 from 2.jpg ...
    views[0, 5] = [255, 255]  # ... but one orientation is 1.jpg exactly
    matches = search_codes(index, views, 3)[0]
    assert [(m.path, m.distance) for m in matches] == [("1.jpg", 0), ("2.jpg", 4), ("0.jpg", 8)]


def test_dedup_groups_cannot_chain_and_lead_with_the_copy_to_keep():
    from aetools.index.folder import group_pairs

    def record(n: int, pixels: int, size: int = 1, mtime: int = 0) -> FileRecord:
        return FileRecord(f"{n}.jpg", size, mtime, f"sha{n}", pixels, 1)

    # a chain 0 ~ 1 ~ 2 ~ 3 ~ 4 of look-alikes (each only like its neighbours), 0 the largest
    records = {n: record(n, 100 - n) for n in range(5)}
    chain = {(n, n + 1): (2, 40) for n in range(4)}
    groups = group_pairs(records, chain)
    assert [[m.path for m in g] for g in groups] == [["0.jpg", "1.jpg"], ["2.jpg", "3.jpg"]]  # 4 is left alone
    # a star around 2, which has the most pixels; ties broken by file size, then age
    records = {0: record(0, 50, size=9), 1: record(1, 50, size=9, mtime=5), 2: record(2, 80), 3: record(3, 50)}
    star = {(0, 2): (1, 30), (1, 2): (3, 20), (2, 3): (0, 90)}
    ((lead, *rest),) = group_pairs(records, star)
    assert (lead.path, lead.matches) == ("2.jpg", 0)
    assert [(m.path, m.distance, m.matches) for m in rest] == [("0.jpg", 1, 30), ("1.jpg", 3, 20), ("3.jpg", 0, 90)]


def test_quarter_turned_codes_make_candidates():
    from aetools.index.folder import candidate_pairs

    index = HashIndex(16, "m")
    codes = np.array([[0, 0], [255, 255], [15, 15]], dtype=np.uint8)  # 8 or more bits apart
    far = [170, 170]  # 8 bits from each code
    turns = np.array([[far, far, far], [[0, 1], far, far], [far, [255, 254], far]], dtype=np.uint8)
    index.add([FileRecord(f"{n}.jpg", 1, 1, str(n)) for n in range(3)], codes, turns)
    # 1 turned by 90 degrees is 1 bit from 0; 2 turned by 180 degrees is 1 bit from 1
    assert candidate_pairs(index, 2) == {(0, 1): 1, (1, 2): 1}


def test_jpeg_draft_decoding_reads_a_reduced_image(tmp_path):
    from aetools.data.io import load_image

    Image.fromarray(photo(512)).save(tmp_path / "big.jpg", quality=90)
    Image.fromarray(photo(512)).save(tmp_path / "big.png")
    assert load_image(tmp_path / "big.jpg", draft=128).pixels.shape == (128, 128, 3)
    assert load_image(tmp_path / "big.jpg", draft=100).pixels.shape == (128, 128, 3)  # scales are 1/2^k
    assert load_image(tmp_path / "big.png", draft=128).pixels.shape == (512, 512, 3)


# ------------------------------------------------------------------------------------ the shipped model


def test_shipped_model_finds_turned_and_cropped_copies_first(tmp_path):
    """Edited copies of a bundled photo are nearest their original among the other bundled photos."""
    from aetools.data.augment import crop, rotate, rotate90
    from aetools.index.folder import search_files
    from aetools.weights import load_model

    model = load_model(None, "hash")
    folder = tmp_path / "bundled"
    folder.mkdir()
    for name in PHOTOS:
        Image.fromarray(photo(256, name)).save(folder / f"{name}.png")
    index, _ = index_folder(model, folder)
    original = Image.open(folder / "coffee.png").convert("RGB")
    for label, edited, turns in (
        ("rotate 90", rotate90(original), True),  # found by trying the query's orientations
        ("rotate 5", rotate(original, 5), False),
        ("crop 25%", crop(original, 0.75, 0.3, 0.6), False),
    ):
        edited.save(tmp_path / "query.png")
        (result,) = search_files(model, index, [tmp_path / "query.png"], k=2, orientations=turns)
        assert Path(result.matches[0].path).name == "coffee.png", label
        assert result.matches[0].distance < result.matches[1].distance, label


def test_python_api_gives_the_indexed_code(pictures, tiny_hash):
    import aetools
    from aetools.index.store import unpack_codes

    model = load(tiny_hash)
    index, _ = index_folder(model, pictures)
    (i,) = [i for i, r in index.records.items() if r.path.endswith("coffee.jpg")]
    code = aetools.hash_code(pictures / "coffee.jpg", model=model)
    assert code.dtype == bool and code.shape == (32,)
    assert np.array_equal(code, unpack_codes(index.code(i)[None])[0])
    pil_code = aetools.hash_code(Image.open(pictures / "coffee.jpg"), model=model)  # decoded in full
    assert pil_code.shape == (32,) and np.count_nonzero(pil_code != code) <= 4


@pytest.mark.slow
def test_eval_hash_prints_ours_beside_the_baselines(tmp_path, tiny_hash):
    import io
    import tarfile

    pytest.importorskip("imagehash")
    eval_root, photos, cifar = tmp_path / "eval", tmp_path / "photos", tmp_path / "cifar"
    (eval_root / "kodak24").mkdir(parents=True)
    photos.mkdir()
    cifar.mkdir()
    for i, name in enumerate(PHOTOS):
        folder = eval_root / "kodak24" if i < 3 else photos
        Image.fromarray(photo(96, name)).save(folder / f"{name}.png")
    for split in ("test", "train"):
        with tarfile.open(cifar / f"{split}.tar", "w") as tar:
            for name in ("astronaut", "coffee"):
                for j in range(3):
                    buffer = io.BytesIO()
                    Image.fromarray(photo(32 + 4 * j, name)).resize((32, 32)).save(buffer, "JPEG")
                    info = tarfile.TarInfo(f"{name}/{j:04d}.jpg")
                    info.size = len(buffer.getvalue())
                    tar.addfile(info, io.BytesIO(buffer.getvalue()))
    r = run(
        "eval",
        "hash",
        "--eval",
        eval_root,
        "--photos",
        photos,
        "--cifar",
        cifar,
        "--model",
        tiny_hash,
        "--cifar-model",
        tiny_hash,
        "--part",
        "near-dup",
        "--part",
        "semantic",
        "--part",
        "dedup",
        "--held-out",
        photos,
        "--format",
        "markdown",
    )
    assert r.exit_code == 0, r.output
    assert "| pHash (imagehash) |" in r.stdout and "| dHash (imagehash) + 8 orientations |" in r.stdout
    assert "**False duplicates in libraries of distinct photos" in r.stdout
    for method in ("ours, dedup default (", "ours, codes alone (", "pHash (imagehash, 10 bits)"):
        assert f"| {method}" in r.stdout
    assert "**Near-duplicate Recall@1 (%) at the default setting" in r.stdout
    assert "| ours (32 bits) |" in r.stdout and "crop 25%" in r.stdout
    for method in ("LSH, pixels", "ITQ, pixels", "ITQ, our latent"):
        assert f"| {method} |" in r.stdout
    assert "3 originals (Kodak24 + CBSD68) among 6 images" in r.stdout


def test_flat_borders_are_trimmed_before_coding():
    from aetools.data.augment import pad
    from aetools.index.encode import trim_borders

    image = Image.fromarray(photo(120))
    for fill in ((0, 0, 0), (255, 255, 255), (30, 120, 200)):
        padded = np.asarray(pad(image, 0.2, fill), dtype=np.float32) / 255
        assert padded.shape == (144, 144, 3)
        assert trim_borders(padded).shape == (120, 120, 3)
    original = np.asarray(image, dtype=np.float32) / 255
    assert trim_borders(original).shape == original.shape  # a photo's own edges stay
    flat = np.zeros((50, 80, 3), dtype=np.float32)
    assert trim_borders(flat).shape == (50 - 2 * 15, 80 - 2 * 24, 3)  # at most 30% from each side


def test_python_api_round_trip_index_search_and_find_duplicates(tmp_path):
    """imagededup's shape: {file: [(duplicate, distance)]}; the copy to keep lists its copies, each copy it."""
    import aetools

    folder = tmp_path / "library"
    folder.mkdir()
    for name in PHOTOS[:4]:
        Image.fromarray(photo(256, name)).save(folder / f"{name}.png")
    Image.open(folder / "coffee.png").convert("RGB").resize((128, 128)).save(folder / "small copy.jpg", quality=60)
    report = aetools.hash_index(folder)
    assert (report.added, report.failures) == (5, [])
    found = aetools.hash_search([folder / "small copy.jpg"], folder, k=2)
    (matches,) = found.values()
    assert {Path(p).name for p, _ in matches} >= {"small copy.jpg", "coffee.png"}
    duplicates = aetools.find_duplicates(folder)
    named = {Path(k).name: [(Path(p).name, d) for p, d in v] for k, v in duplicates.items()}
    assert [p for p, _ in named["coffee.png"]] == ["small copy.jpg"]  # the larger copy is the one to keep
    assert [p for p, _ in named["small copy.jpg"]] == ["coffee.png"]
    assert all(named[n] == [] for n in ("astronaut.png", "chelsea.png", "rocket.png"))
    found = aetools.find_duplicates(folder, groups=True)
    assert [Path(p).name for p in found.suggested_removals()] == ["small copy.jpg"]


def test_a_second_update_of_the_same_index_is_refused_while_the_first_runs(pictures, tiny_hash):
    from aetools.index.store import HashIndexError, IndexLock

    model = load(tiny_hash)
    with IndexLock(pictures / ".aetools-index"):  # another run holds the index
        with pytest.raises(HashIndexError, match="being updated by aetools process"):
            index_folder(model, pictures, update=True)
    index, report = index_folder(model, pictures, update=True)  # released: the next run goes ahead
    assert len(index) == 4


def test_photos_only_in_sub_folders_get_a_hint_about_recursion(tmp_path, tiny_hash):
    (tmp_path / "album" / "2026").mkdir(parents=True)
    Image.fromarray(photo(64)).save(tmp_path / "album" / "2026" / "a.png")
    r = run("hash-index", tmp_path / "album", "-m", tiny_hash)
    assert r.exit_code == 2 and "1 in its sub-folders: add -r" in r.output
    assert run("hash-index", tmp_path / "album", "-r", "-m", tiny_hash).exit_code == 0


def test_an_index_folder_that_cannot_be_created_fails_before_any_work(pictures, tiny_hash, tmp_path):
    (tmp_path / "blocked").write_text("a file where the index folder's parent should be")
    r = run("hash-index", pictures, "-m", tiny_hash, "--index", tmp_path / "blocked" / "index")
    assert r.exit_code == 2 and "cannot create the index there" in r.output


def test_dedup_never_writes_a_report_over_a_photo_or_an_existing_file(pictures, tiny_hash, tmp_path):
    before = (pictures / "coffee.jpg").read_bytes()
    r = run("dedup", pictures, "-m", tiny_hash, "--json", pictures / "coffee.jpg")
    assert r.exit_code == 2 and "is an image in a folder being read" in r.output
    assert (pictures / "coffee.jpg").read_bytes() == before
    (tmp_path / "blocked").write_text("a file where a folder should be")
    r = run("dedup", pictures, "-m", tiny_hash, "--html", tmp_path / "blocked" / "page.html")
    assert r.exit_code == 2 and "blocked is a file" in r.output
    (tmp_path / "old.json").write_text("{}")
    r = run("dedup", pictures, "-m", tiny_hash, "--json", tmp_path / "old.json")
    assert r.exit_code == 2 and "exists (use --overwrite" in r.output
    assert (tmp_path / "old.json").read_text() == "{}"
    assert not (pictures / ".aetools-index").exists()  # all refused before any work
    page = tmp_path / "new" / "folder" / "page.html"  # a folder that does not exist yet is made
    r = run("dedup", pictures, "-m", tiny_hash, "--html", page, "--json", tmp_path / "old.json", "--overwrite")
    assert r.exit_code == 0 and page.exists() and (tmp_path / "old.json").read_text() != "{}"


def test_each_image_keeps_only_its_nearest_candidates():
    from aetools.index.folder import nearest_pairs

    # image 0 sits in a crowd: 12 look-alikes 1-3 bits away; 13 is a copy of 12 only
    pairs = {(0, j): 1 + j % 3 for j in range(1, 13)} | {(12, 13): 0}
    kept = nearest_pairs(pairs, per_image=2)
    assert kept[(12, 13)] == 0  # among 12's and 13's nearest
    assert all((0, j) in kept for j in range(1, 12))  # each crowd member's own nearest is 0
    assert len(nearest_pairs({(0, j): 1 for j in range(1, 13)}, per_image=3)) == 12
    star = {(0, j): j for j in range(1, 6)} | {(j, j + 10): 0 for j in range(1, 6)}  # 1..5 have closer partners
    assert set(nearest_pairs(star, per_image=1)) == {(j, j + 10) for j in range(1, 6)} | {(0, 1)}


def test_pdq_baseline_scores_planted_copies_at_its_threshold(tmp_path):
    """Meta's PDQ beside pHash and dHash in the dedup benchmark: finite recall, and a JPEG copy is found."""
    pytest.importorskip("pdqhash")
    from aetools.bench.dedup import false_duplicates, recall_at_default
    from aetools.bench.hash import PDQ_THRESHOLD, pdq_hasher

    folder = tmp_path / "set"
    folder.mkdir()
    for name in PHOTOS:
        Image.fromarray(photo(160, name)).save(folder / f"{name}.png")
    files = sorted(folder.glob("*.png"))
    model = load(tiny_hash_weights(tmp_path / "tiny.safetensors"))
    result = recall_at_default(model, files[:3], files[3:])
    pdq = f"PDQ (pdqhash, {PDQ_THRESHOLD} of 256 bits)"
    assert set(result.recall[pdq]) == set(result.recall["pHash (imagehash, 10 bits)"])
    assert all(0 <= v <= 1 for v in result.recall[pdq].values())
    assert result.recall[pdq]["JPEG q30"] == 1.0 and result.recall[pdq]["rotate 90°"] < 1.0
    codes = pdq_hasher()([Image.open(f).convert("RGB") for f in files])
    assert codes.shape == (len(files), 32)  # 256 bits
    from aetools.bench.dedup import describe_files

    found = false_duplicates(describe_files(model, files))
    assert found[pdq].pairs == 0  # six different photos: no pair within 31 bits
