"""Helpers for the store tests: stores on both backends and a TCP proxy that injects faults.

The proxy sits between the real minio client and the real moto S3 server. It can reset or answer
503 to the next N connections, drop every open connection, stall for a while after forwarding a
number of request bytes (an endpoint that hangs in the middle of an upload), and stop listening
after forwarding a number of request bytes (an endpoint that dies in the middle of an upload),
then start again on the same port.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lima.settings import Settings
from lima.store import ArtifactStore, FileBackend, S3Backend, s3_backend

SECRET = "testing-secret-key"
ACCESS = "testing-access"


def file_store(settings: Settings) -> ArtifactStore:
    return ArtifactStore(FileBackend(settings.artifacts_dir), "lima")


def s3_store(settings: Settings, **overrides: object) -> ArtifactStore:
    """A store in a bucket of its own: moto keeps state per process, shared by every test."""
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    backend = s3_backend(settings.model_copy(update=overrides), bucket)
    return ArtifactStore(backend, "lima")


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def publish(store: ArtifactStore, stage: str, key: str, folder: Path, **summary: object):
    return store.publish(
        stage,
        key,
        folder,
        code_version="1",
        config={"k": 1},
        inputs=[],
        started_at="2026-01-01T00:00:00+00:00",
        summary=dict(summary),
    )


def corrupt(store: ArtifactStore, object_key: str) -> None:
    """Flip the first byte of a stored object in place (same size), behind the store's back."""
    backend = store.backend
    if isinstance(backend, FileBackend):
        path = backend.root / object_key
        data = bytearray(path.read_bytes())
        data[0] ^= 0xFF
        path.write_bytes(bytes(data))
        return
    assert isinstance(backend, S3Backend)
    data = bytearray(backend.get_bytes(object_key) or b"")
    data[0] ^= 0xFF
    backend.put_bytes(object_key, bytes(data))


class FaultProxy:
    """A threaded TCP proxy to `upstream` with switchable faults."""

    def __init__(self, upstream: tuple[str, int], port: int = 0) -> None:
        self.upstream = upstream
        self.port = port
        self.accepted = 0
        self.forwarded = 0
        self.cut_after: int | None = None
        self.pause_after: int | None = None
        """Stall the upload for `pause_s` once this many request bytes went through."""
        self.pause_s = 0.0
        self._fail: list[str] = []  # faults for the next connections: "reset" | "503"
        self._lose_reply = b""
        self._doomed: set[socket.socket] = set()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._running = threading.Event()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._running.set()
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and kill every open connection (the endpoint is gone)."""
        self._running.clear()
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        self.drop_connections()

    def drop_connections(self) -> None:
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def fail_next(self, count: int, how: str = "reset") -> None:
        with self._lock:
            self._fail.extend([how] * count)

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._running.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                fault = self._fail.pop(0) if self._fail else None
            if fault == "reset":
                client.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                client.close()
            elif fault == "503":
                threading.Thread(target=self._answer_503, args=(client,), daemon=True).start()
            else:
                self._connect(client)

    @staticmethod
    def _answer_503(client: socket.socket) -> None:
        client.settimeout(5)
        with contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(65536)
                if not chunk:
                    break
                data += chunk
            body = b"<html>busy</html>"
            client.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
        client.close()

    def _connect(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        client.settimeout(None)
        with self._lock:
            self._sockets.update((client, server))
        threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def lose_reply_to_put(self, path_part: bytes) -> None:
        """Forward the next PUT whose request line names `path_part`, but never its reply: the
        server did the write, the client sees a dropped connection (and retries)."""
        self._lose_reply = path_part

    def _pump(self, source: socket.socket, dest: socket.socket, upstream: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                request_line = chunk.split(b"\r\n", 1)[0] if upstream else b""
                if (
                    self._lose_reply
                    and request_line.startswith(b"PUT ")
                    and (self._lose_reply in request_line)
                ):
                    self._lose_reply = b""
                    self._doomed.add(dest)  # the reply on this connection is lost
                if not upstream and source in self._doomed:
                    break
                dest.sendall(chunk)
                if upstream:
                    with self._lock:
                        self.forwarded += len(chunk)
                        cut = self.cut_after is not None and self.forwarded >= self.cut_after
                        pause = self.pause_after is not None and self.forwarded >= self.pause_after
                        if pause:
                            self.pause_after = None
                    if pause:
                        time.sleep(self.pause_s)  # the endpoint hangs mid-request
                    if cut:
                        self.cut_after = None
                        self.stop()
                        return
        for sock in (source, dest):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto S3 server for all store tests (each test uses a bucket of its own)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture
def s3cfg(tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for the shared moto server, with fast retries, ignoring the caller's LIMA_ env."""
    for name in list(os.environ):
        if name.startswith("LIMA_"):
            monkeypatch.delenv(name)
    return Settings(
        work_dir=tmp_path / "work",
        s3_endpoint=moto_endpoint,
        s3_access_key=ACCESS,
        s3_secret_key=SECRET,
        s3_secure=False,
        s3_region="us-east-1",
        s3_retries=2,
        s3_backoff_s=0.05,
        _env_file=None,
    )
