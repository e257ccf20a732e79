"""The artifact store on both backends: the file folder and a real S3 API (moto + minio client)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_helpers import (
    SECRET,
    corrupt,
    file_store,
    make_tree,
    moto_endpoint,
    publish,
    s3_store,
    s3cfg,
)

from lima.errors import IntegrityError, StoreError
from lima.store import ArtifactStore, Manifest, artifact_key, open_store

__all__ = ["moto_endpoint", "s3cfg"]  # fixtures

FILES = {"train.jsonl": b'{"a": 1}\n' * 100, "nested/dir/model.bin": bytes(range(256)) * 50}


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest) -> ArtifactStore:
    if request.param == "file":
        return file_store(request.getfixturevalue("settings"))
    return s3_store(request.getfixturevalue("s3cfg"))


def test_publish_manifest_fetch_roundtrip(store: ArtifactStore, tmp_path: Path) -> None:
    folder = make_tree(tmp_path / "out", FILES)
    published = publish(store, "curate", "k1", folder, rows=3)
    found = store.manifest("curate", "k1")
    assert found == published
    assert found.uri == store.uri("curate", "k1")
    assert {o.path for o in found.objects} == set(FILES)
    assert found.size == sum(len(v) for v in FILES.values())
    assert found.summary == {"rows": 3} and found.packages["python"] and found.host
    dest = store.fetch(found, tmp_path / "fetched")
    assert {p: (dest / p).read_bytes() for p in FILES} == FILES
    assert store.read_object(found, "train.jsonl") == FILES["train.jsonl"]
    some = store.fetch(found, tmp_path / "some", ["train.jsonl"])
    assert [p.name for p in some.rglob("*") if p.is_file()] == ["train.jsonl"]
    assert [m.key for m in store.artifacts("curate")] == ["k1"]


def test_manifest_json_roundtrip_and_digest() -> None:
    from lima.store import InputRef
    from lima.store.artifacts import ObjectEntry

    manifest = Manifest(
        "s",
        "k",
        "1",
        {"x": [1, 2]},
        [InputRef("a", "ka", "d" * 64, "file:///a")],
        [ObjectEntry("f", "0" * 64, 3, "lima/f")],
        "t0",
        "t1",
        1.5,
    )
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest and again.digest == manifest.digest
    assert json.loads(manifest.to_json())["digest"] == manifest.digest


def test_an_output_without_manifest_does_not_exist(store: ArtifactStore, tmp_path: Path) -> None:
    folder = make_tree(tmp_path / "out", FILES)
    for path in sorted(folder.rglob("*")):  # objects uploaded, manifest never written
        if path.is_file():
            key = f"lima/artifacts/train/k2/objects/deadbeef/{path.relative_to(folder)}"
            store.backend.put_file(key, path)
    assert store.manifest("train", "k2") is None
    assert list(store.artifacts()) == []


def test_manifest_is_written_last(store: ArtifactStore, tmp_path: Path) -> None:
    order: list[str] = []
    for name in ("put_file", "put_if_absent"):
        original = getattr(store.backend, name)

        def spy(key, *args, _original=original, **kwargs):
            order.append(key.rsplit("/", 1)[-1])
            return _original(key, *args, **kwargs)

        setattr(store.backend, name, spy)
    publish(store, "curate", "k3", make_tree(tmp_path / "out", FILES))
    assert order[-1] == "manifest.json" and sorted(order[:-1]) == ["model.bin", "train.jsonl"]


def test_reads_verify_sha256(store: ArtifactStore, tmp_path: Path) -> None:
    manifest = publish(store, "curate", "k4", make_tree(tmp_path / "out", FILES))
    corrupt(store, manifest.object("nested/dir/model.bin").key)
    with pytest.raises(IntegrityError, match=r"digest mismatch for .*model.bin"):
        store.fetch(manifest, tmp_path / "fetched")
    assert not (tmp_path / "fetched" / "nested" / "dir" / "model.bin").exists()  # nothing half-kept
    with pytest.raises(IntegrityError):
        store.read_object(manifest, "nested/dir/model.bin")
    assert store.read_object(manifest, "train.jsonl") == FILES["train.jsonl"]


def test_a_corrupt_local_copy_is_downloaded_again(store: ArtifactStore, tmp_path: Path) -> None:
    manifest = publish(store, "curate", "k5", make_tree(tmp_path / "out", FILES))
    dest = store.fetch(manifest, tmp_path / "fetched")
    (dest / "train.jsonl").write_bytes(b"X" * len(FILES["train.jsonl"]))
    store.fetch(manifest, dest)
    assert (dest / "train.jsonl").read_bytes() == FILES["train.jsonl"]


def test_unreadable_manifest_is_an_integrity_error(store: ArtifactStore) -> None:
    store.backend.put_bytes("lima/artifacts/curate/k6/manifest.json", b"{not json")
    with pytest.raises(IntegrityError, match=r"unreadable manifest .*k6/manifest.json"):
        store.manifest("curate", "k6")


def test_put_if_absent_first_writer_wins(store: ArtifactStore) -> None:
    backend = store.backend
    assert backend.put_if_absent("lima/x/one.json", b"first") is True
    assert backend.put_if_absent("lima/x/one.json", b"second") is False
    assert backend.get_bytes("lima/x/one.json") == b"first"
    assert backend.exists("lima/x/one.json") and not backend.exists("lima/x/two.json")
    assert backend.get_bytes("lima/x/two.json") is None


def test_missing_object_is_a_store_error(store: ArtifactStore, tmp_path: Path) -> None:
    manifest = publish(store, "curate", "k7", make_tree(tmp_path / "out", FILES))
    store.backend.delete_prefix(f"lima/artifacts/curate/k7/objects/{manifest.attempt}/")
    with pytest.raises(StoreError):
        store.fetch(manifest, tmp_path / "fetched")


def test_cache_values_and_run_records(store: ArtifactStore) -> None:
    assert store.cache_get("judge", {"q": 1}) is None
    store.cache_put("judge", {"q": 1}, {"winner": "a"})
    assert store.cache_get("judge", {"q": 1}) == {"winner": "a"}
    assert store.cache_get("judge", {"q": 2}) is None
    store.record_run("demo", "r2", {"run_id": "r2", "started_at": "2"})
    store.record_run("demo", "r1", {"run_id": "r1", "started_at": "1"})
    store.record_run("other", "r3", {"run_id": "r3", "started_at": "3"})
    assert [r["run_id"] for r in store.runs("demo")] == ["r1", "r2"]
    assert len(store.runs()) == 3


def test_artifact_key_depends_on_every_part() -> None:
    base = artifact_key("train", "1", {"lr": 1}, {"curate": "d1"})
    assert base == artifact_key("train", "1", {"lr": 1}, {"curate": "d1"})
    assert (
        len(
            {
                base,
                artifact_key("generate", "1", {"lr": 1}, {"curate": "d1"}),
                artifact_key("train", "2", {"lr": 1}, {"curate": "d1"}),
                artifact_key("train", "1", {"lr": 2}, {"curate": "d1"}),
                artifact_key("train", "1", {"lr": 1}, {"curate": "d2"}),
            }
        )
        == 5
    )


def test_open_store_picks_the_backend(settings, s3_settings) -> None:
    from lima.store import FileBackend, S3Backend

    assert isinstance(open_store(settings).backend, FileBackend)
    s3 = open_store(s3_settings).backend
    assert isinstance(s3, S3Backend) and s3.bucket == "lima"
    assert isinstance(
        open_store(s3_settings.model_copy(update={"bucket": "b2"})).backend, S3Backend
    )


def test_file_backend_refuses_keys_outside_its_root(settings) -> None:
    with pytest.raises(StoreError, match="escapes"):
        file_store(settings).backend.put_bytes("../../etc/x", b"no")


def test_secrets_never_shown(s3cfg, tmp_path: Path) -> None:
    s3_settings = s3cfg
    store = s3_store(s3_settings)
    manifest = publish(store, "curate", "k8", make_tree(tmp_path / "out", FILES))
    store.record_run("demo", "r1", {"settings": s3_settings.describe()})
    shown = [
        repr(s3_settings),
        str(s3_settings),
        s3_settings.describe(),
        s3_settings.model_dump_json(),
        repr(store.backend),
        str(store.backend),
        manifest.to_json(),
        json.dumps(store.runs()),
    ]
    broken = s3_store(s3_settings, s3_endpoint="127.0.0.1:9", s3_retries=0)
    with pytest.raises(StoreError) as caught:
        broken.manifest("curate", "k8")
    shown += [str(caught.value), repr(caught.value)]
    for text in shown:
        assert SECRET not in text and "testing-access" not in text


def test_s3_conditional_writes_are_enforced_by_the_server(s3cfg) -> None:
    """The exists() pre-check aside, the PUT itself carries If-None-Match / If-Match, and the
    server (moto, like AWS S3 and MinIO) refuses it with 412: what leases rely on."""
    backend = s3_store(s3cfg).backend
    backend.put_bytes("lima/cond.json", b"first")
    assert backend._conditional_put("lima/cond.json", b"second", {"If-None-Match": "*"}) is False
    assert backend.get_bytes("lima/cond.json") == b"first"
    etag = backend.stat("lima/cond.json").etag
    assert backend.put_if_match("lima/cond.json", b"third", "0" * 32) is False
    assert backend.get_bytes("lima/cond.json") == b"first"
    assert backend.put_if_match("lima/cond.json", b"third", etag) is True
    assert backend.get_bytes("lima/cond.json") == b"third"
    assert backend.delete_if_match("lima/cond.json", etag) is False  # stale version: kept
    assert backend.delete_if_match("lima/cond.json", backend.stat("lima/cond.json").etag)
    assert backend.stat("lima/cond.json") is None


def test_reads_create_no_bucket(s3cfg) -> None:
    """`lima status` on a fresh endpoint must not create buckets: reads see an empty store."""
    store = s3_store(s3cfg)
    assert store.runs() == [] and store.manifest("curate", "k1") is None
    assert store.backend.stat("lima/x") is None and list(store.backend.list("lima/")) == []
    assert not store.backend.client.bucket_exists(store.backend.bucket)
    store.record_run("demo", "r1", {"stages": []})
    assert store.backend.client.bucket_exists(store.backend.bucket)
