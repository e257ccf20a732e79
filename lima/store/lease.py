"""One lease per stage key, so two runs of one experiment never compute the same artifact twice.

The runner holds the lease of (stage, key) while it checks the cache and computes: a second run
that reaches the same key waits, then finds the first one's manifest and adopts it.

- Local store: an exclusive `flock` on `<root>/<prefix>/leases/<stage>/<key>.lock`. The kernel
  drops it when the holder exits, however it dies.
- S3: an object `leases/<stage>/<key>.json` created with `If-None-Match: *` and renewed by a
  heartbeat with `If-Match: <etag>` (conditional writes: AWS S3, MinIO, moto). A holder that
  dies stops renewing; once `expires_at` has passed, a waiter takes the lease over with
  `If-Match` on the stale version, so exactly one waiter wins. A holder whose renewal fails
  (taken over after a long stall) marks the lease `lost`; the manifest-last protocol still keeps
  both writers' files apart, so the worst case is the duplicate work leases exist to avoid.

Expiry compares the holder's clock with the waiter's: keep clocks within a fraction of `ttl_s`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from lima.errors import LeaseTimeoutError
from lima.store.backends import Backend, FileBackend

log = logging.getLogger("lima.store.lease")
_HELD: set[str] = set()
"""Owners of the leases this process holds or is acquiring (a lease object naming an owner of
this process that is not in here is a leftover)."""
DEFAULT_TTL_S = 120.0
DEFAULT_WAIT_S = 24 * 3600.0  # a training stage may hold its key for hours


class StageLease:
    """Context manager: `with store.lease(stage, key): ...` (blocks until held)."""

    def __init__(
        self,
        backend: Backend,
        name: str,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        wait_s: float = DEFAULT_WAIT_S,
        poll_s: float = 1.0,
        on_wait: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.backend, self.name = backend, name
        self.ttl_s, self.wait_s, self.poll_s = ttl_s, wait_s, poll_s
        self.on_wait = on_wait
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.waited_s = 0.0
        self.lost = False
        self._impl: _FileLease | _ObjectLease = (
            _FileLease(self) if isinstance(backend, FileBackend) else _ObjectLease(self)
        )

    def __enter__(self) -> StageLease:
        started = time.monotonic()
        self._impl.acquire()
        self.waited_s = round(time.monotonic() - started, 3)
        return self

    def __exit__(self, *exc: object) -> None:
        self._impl.release()

    def _deadline_passed(self, started: float, holder: dict[str, Any]) -> None:
        if time.monotonic() - started > self.wait_s:
            raise LeaseTimeoutError(
                f"lease {self.backend.uri(self.name)} still held by {holder.get('owner', '?')} "
                f"after {self.wait_s:.0f}s"
            )

    def _notify(self, holder: dict[str, Any], notified: list[bool]) -> None:
        if not notified:
            notified.append(True)
            log.info("waiting for %s held by %s", self.name, holder.get("owner", "?"))
            if self.on_wait is not None:
                self.on_wait(holder)


class _FileLease:
    def __init__(self, lease: StageLease) -> None:
        self.lease = lease
        self.handle: Any = None

    def acquire(self) -> None:
        backend = self.lease.backend
        assert isinstance(backend, FileBackend)
        path = backend.path(self.lease.name + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+")
        started, notified = time.monotonic(), []
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                handle.seek(0)
                holder = _parse(handle.read().encode())
                self.lease._notify(holder, notified)
                try:
                    self.lease._deadline_passed(started, holder)
                except LeaseTimeoutError:
                    handle.close()
                    raise
                time.sleep(self.lease.poll_s)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"owner": self.lease.owner, "since": time.time()}))
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.handle.truncate(0)
                fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


class _ObjectLease:
    def __init__(self, lease: StageLease) -> None:
        self.lease = lease
        self.key = lease.name + ".json"
        self.etag = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        now = time.time()
        return json.dumps(
            {"owner": self.lease.owner, "renewed_at": now, "expires_at": now + self.lease.ttl_s}
        ).encode()

    def acquire(self) -> None:
        backend: Any = self.lease.backend
        started, notified = time.monotonic(), []
        # Registered before the first write: a lease object naming this owner is then never
        # mistaken for a leftover of this process by another thread (see `_abandoned`).
        _HELD.add(self.lease.owner)
        try:
            while not self._try_acquire(backend, notified, started):
                time.sleep(self.lease.poll_s)
        except BaseException:
            _HELD.discard(self.lease.owner)
            raise
        self._thread = threading.Thread(target=self._heartbeat, name="lima-lease", daemon=True)
        self._thread.start()

    def _try_acquire(self, backend: Any, notified: list[bool], started: float) -> bool:
        if backend.put_if_absent(self.key, self._body()) is True:
            return self._remember_etag(backend)
        current = backend.stat(self.key)
        if current is None:
            return False  # released between our two requests: try again at once
        holder = _parse(backend.get_bytes(self.key) or b"")
        if float(holder.get("expires_at", 0)) < time.time() or _abandoned(holder):
            # Expired, unreadable, or left by a dead process of this host: take it over unless
            # someone else renewed or took it first.
            log.warning("taking over stale lease %s of %s", self.key, holder.get("owner", "?"))
            if backend.put_if_match(self.key, self._body(), current.etag):
                return self._remember_etag(backend)
            return False
        self.lease._notify(holder, notified)
        self.lease._deadline_passed(started, holder)
        return False

    def _remember_etag(self, backend: Any) -> bool:
        found = backend.stat(self.key)
        if found is None or _parse(backend.get_bytes(self.key) or b"").get("owner") != (
            self.lease.owner
        ):
            return False  # a server without conditional writes let another writer in
        self.etag = found.etag
        return True

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease.ttl_s / 4):
            if not self.renew():
                return

    def renew(self) -> bool:
        """Extend the lease; False once it was taken over (then `lease.lost` is set)."""
        backend: Any = self.lease.backend
        try:
            renewed = backend.put_if_match(self.key, self._body(), self.etag)
        except Exception as error:  # a store hiccup: the next beat tries again
            log.warning("could not renew lease %s: %s", self.key, error)
            return True
        if not renewed:
            self.lease.lost = True
            log.warning("lease %s was taken over by another run", self.key)
            return False
        found = backend.stat(self.key)
        self.etag = found.etag if found is not None else self.etag
        return True

    def release(self) -> None:
        _HELD.discard(self.lease.owner)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.lease.lost or not self.etag:
            return
        backend: Any = self.lease.backend
        try:
            backend.delete_if_match(self.key, self.etag)
        except Exception as error:  # it expires on its own
            log.warning("could not release lease %s: %s", self.key, error)


def _abandoned(holder: dict[str, Any]) -> bool:
    """The holder ran on this host and is gone: its process exited, or it is this process and
    no longer holds it (a run whose release failed because the store was unreachable). Then
    waiting for the TTL would only delay the re-run."""
    host, _, rest = str(holder.get("owner", "")).partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return holder.get("owner") not in _HELD
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
