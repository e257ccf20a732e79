"""Issue 13: nothing corrupt served, nothing stale, nothing outside the store; on both backends."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
from store_helpers import (
    corrupt,
    file_store,
    make_tree,
    moto_endpoint,
    publish,
    s3_store,
    s3cfg,
)

from lima.errors import IntegrityError, StoreError
from lima.spec import StorageSpec
from lima.store import ArtifactStore, FileBackend, Manifest, pyarrow_filesystem
from lima.store.gc import collect

__all__ = ["moto_endpoint", "s3cfg"]  # fixtures

FILES = {"report.html": b"<html>" + b"x" * 5000 + b"</html>", "fig/a.png": bytes(range(256)) * 8}


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest) -> ArtifactStore:
    if request.param == "file":
        return file_store(request.getfixturevalue("settings"))
    return s3_store(request.getfixturevalue("s3cfg"))


def published(store: ArtifactStore, tmp_path: Path, key: str = "k1") -> Manifest:
    return publish(store, "report", key, make_tree(tmp_path / key, FILES), win_rate=0.4)


def rewrite(store: ArtifactStore, object_key: str, data: bytes) -> None:
    """Change a stored object behind the store's back (a disk fault, an operator's edit)."""
    if isinstance(store.backend, FileBackend):
        path = store.backend.root / object_key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        store.backend.put_bytes(object_key, data)


# -- verification ---------------------------------------------------------------------------------


def test_cheap_check_finds_missing_and_resized_objects(store: ArtifactStore, tmp_path) -> None:
    manifest = published(store, tmp_path)
    store.verify(manifest)
    html = manifest.object("report.html")
    rewrite(store, html.key, b"<html>truncated")
    with pytest.raises(IntegrityError, match=r"report.html: 15 bytes, manifest says 5013"):
        store.verify(manifest)
    store.backend.delete(manifest.object("fig/a.png").key)
    assert [p.split(":")[0] for p in store.problems(manifest)] == ["fig/a.png", "report.html"]


def test_a_flipped_byte_passes_the_size_check_and_fails_the_deep_one(store, tmp_path) -> None:
    manifest = published(store, tmp_path)
    corrupt(store, manifest.object("report.html").key)
    store.verify(manifest)  # same size: the cheap check cannot see it
    with pytest.raises(IntegrityError, match=r"report\.html: sha256 differs from the manifest"):
        store.verify(manifest, deep=True)


def test_an_edited_manifest_is_refused_naming_its_file(store: ArtifactStore, tmp_path) -> None:
    manifest = published(store, tmp_path)
    manifest_key = store.manifest_key("report", "k1")
    raw = json.loads(store.backend.get_bytes(manifest_key))
    raw["summary"]["win_rate"] = 1.0  # "100 % wins"
    rewrite(store, manifest_key, json.dumps(raw).encode())
    with pytest.raises(IntegrityError) as caught:
        store.manifest("report", "k1")
    assert "report/k1/manifest.json" in str(caught.value) and "seal" in str(caught.value)
    assert manifest.summary["win_rate"] == 0.4


def test_a_truncated_manifest_names_its_file(store: ArtifactStore, tmp_path) -> None:
    published(store, tmp_path)
    manifest_key = store.manifest_key("report", "k1")
    raw = store.backend.get_bytes(manifest_key)
    rewrite(store, manifest_key, raw[: len(raw) // 2])
    with pytest.raises(IntegrityError, match=r"unreadable manifest .*report/k1/manifest.json"):
        store.manifest("report", "k1")


def test_a_resealed_manifest_cannot_point_outside_its_artifact(store, tmp_path) -> None:
    """Even a well-formed manifest (seal recomputed) may only name its own attempt's objects."""
    manifest = published(store, tmp_path)
    other = published(store, tmp_path, "k2")
    manifest.objects[0].key = other.objects[0].key
    rewrite(store, store.manifest_key("report", "k1"), manifest.to_json().encode())
    with pytest.raises(IntegrityError, match="points outside its artifact"):
        store.manifest("report", "k1")


def test_a_manifest_copied_to_another_key_is_refused(store, tmp_path) -> None:
    published(store, tmp_path)
    raw = store.backend.get_bytes(store.manifest_key("report", "k1"))
    rewrite(store, store.manifest_key("report", "k9"), raw)
    with pytest.raises(IntegrityError, match="describes report/k1"):
        store.manifest("report", "k9")


# -- truncated records and cache entries ------------------------------------------------------


def test_truncated_run_record_is_skipped_with_its_file_named(store, caplog) -> None:
    store.record_run("demo", "r1", {"run_id": "r1", "started_at": "1", "stages": []})
    store.record_run("demo", "r2", {"run_id": "r2", "started_at": "2", "stages": []})
    key = store.key_of("runs", "demo", "r2.json")
    rewrite(store, key, store.backend.get_bytes(key)[:20])
    with caplog.at_level(logging.WARNING, "lima.store"):
        assert [r["run_id"] for r in store.runs("demo")] == ["r1"]
    assert "runs/demo/r2.json" in caplog.text and "unreadable run record" in caplog.text


def test_truncated_cache_entry_is_a_logged_miss(store, caplog) -> None:
    store.cache_put("verdicts", {"q": 1}, {"winner": "a"})
    key = store._cache_key("verdicts", {"q": 1})
    rewrite(store, key, b'{"winner": "a')
    with caplog.at_level(logging.WARNING, "lima.store"):
        assert store.cache_get("verdicts", {"q": 1}) is None
    assert "unreadable cache entry" in caplog.text and key.split("/")[-1] in caplog.text
    store.cache_put("verdicts", {"q": 1}, {"winner": "b"})
    assert store.cache_get("verdicts", {"q": 1}) == {"winner": "b"}


# -- containment --------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/etc", "../up", "a/../../b", "a//b"])
def test_a_store_refuses_an_escaping_prefix(settings, prefix: str) -> None:
    with pytest.raises(StoreError, match="storage prefix"):
        ArtifactStore(FileBackend(settings.artifacts_dir), prefix)


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../x", ""])
def test_names_from_users_or_records_cannot_leave_the_prefix(store, name: str) -> None:
    with pytest.raises(StoreError, match="not a safe name"):
        store.runs(name)
    with pytest.raises(StoreError, match="not a safe name"):
        store.manifest("report", name)
    with pytest.raises(StoreError, match="not a safe name"):
        store.record_run(name, "r1", {})


def test_checkpoints_stay_inside_the_store_root_and_bucket(settings, s3cfg) -> None:
    """The spec refuses such a prefix; the store refuses it again for callers that skip it."""
    for prefix in ("/tmp/evil", "../../evil", "lima/../../evil"):
        storage = StorageSpec.model_construct(bucket="lima", prefix=prefix)
        with pytest.raises(StoreError):
            pyarrow_filesystem(settings, storage)
        with pytest.raises(StoreError):
            pyarrow_filesystem(s3cfg, storage)
    _, base = pyarrow_filesystem(s3cfg, StorageSpec(prefix="team/exp"))
    assert base == "lima/team/exp"
    _, base = pyarrow_filesystem(settings, StorageSpec(prefix="team/exp"))
    assert Path(base) == (settings.artifacts_dir / "team/exp").resolve()


# -- gc -----------------------------------------------------------------------------------------


def age(store: ArtifactStore, prefix: str, seconds: float) -> None:
    """Make local files look older (S3 objects cannot be back-dated: min_age 0 instead)."""
    if isinstance(store.backend, FileBackend):
        for path in (store.backend.root / prefix).rglob("*"):
            os.utime(path, (time.time() - seconds,) * 2)


def test_gc_removes_orphan_attempts_and_keeps_what_manifests_reference(store, tmp_path) -> None:
    kept = published(store, tmp_path)
    replaced = store.publish(
        "report", "k1", make_tree(tmp_path / "again", FILES), code_version="1", config={},
        inputs=[], started_at="t", replace=True,
    )  # fmt: skip
    orphan = f"{store.artifact_prefix('curate', 'k5')}/objects/dead0000beef"
    store.backend.put_bytes(f"{orphan}/train.jsonl", b"half a publish")
    age(store, "lima", 7 * 3600)
    min_age = 6 * 3600 if isinstance(store.backend, FileBackend) else 0
    dry = collect(store, min_age_s=min_age)
    removable = sorted(folder for folder, _, _ in dry.attempts)
    assert removable == sorted([orphan, kept.objects[0].key.rsplit("/", 2)[0]])
    assert store.backend.stat(f"{orphan}/train.jsonl") is not None  # listing deletes nothing
    collect(store, min_age_s=min_age, apply=True)
    assert store.backend.stat(f"{orphan}/train.jsonl") is None
    store.verify(store.manifest("report", "k1"), deep=True)
    assert store.manifest("report", "k1").attempt == replaced.attempt


def test_gc_leaves_fresh_attempts_alone(settings, tmp_path) -> None:
    store = file_store(settings)
    store.backend.put_bytes("lima/artifacts/train/k7/objects/inflight01/model.bin", b"uploading")
    assert collect(store).attempts == []


def test_gc_removes_old_unfinished_local_writes(settings) -> None:
    store = file_store(settings)
    folder = store.backend.root / "lima" / "artifacts" / "x"
    folder.mkdir(parents=True)
    (folder / ".part-abc").write_bytes(b"killed mid-write")
    age(store, "lima", 7 * 3600)
    garbage = collect(store, apply=True)
    assert [key for key, _ in garbage.temporary] == ["lima/artifacts/x/.part-abc"]
    assert not (folder / ".part-abc").exists()


def test_gc_aborts_abandoned_multipart_uploads(s3cfg) -> None:
    store = s3_store(s3cfg)
    backend = store.backend
    backend.ensure_bucket()
    key = "lima/artifacts/train/k1/objects/a1/model.bin"
    upload_id = backend.client._create_multipart_upload(backend.bucket, key, {})
    backend.client._upload_part(backend.bucket, key, b"x" * (5 << 20), None, upload_id, 1)
    assert [u[:2] for u in backend.abandoned_uploads("lima/")] == [(key, upload_id)]
    garbage = collect(store, min_age_s=0, apply=True)
    assert garbage.uploads == [(key, upload_id)]
    assert backend.abandoned_uploads("lima/") == []
