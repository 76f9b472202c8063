"""The file behind every perfplat registry (data sets, services), and the tokens its entries carry.

A registry is one JSON file the operator may edit by hand. ``perfplat datasets|services …`` and
the admin API change it by read-modify-write under an exclusive ``flock`` on ``<file>.lock``,
writing a temporary file and renaming it over the old one: concurrent changes from several
processes do not lose each other, and a reader never sees half a file. Every process re-reads the
file when it changes (another inode, modification time or size), at most once per
``check_interval_s``.

Entries carry a bearer token kept only as a salted SHA-256 hash: tokens are random 32-byte
secrets, so a slow password hash would add nothing but latency; they are compared in constant
time. What an entry is, and how the whole registry is encoded, is the registry's own business
(``pipeline.datasets``, ``pipeline.services``); this module needs only the small protocols below.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar


class AlreadyExists(ValueError):
    """``create`` of a key the registry already has."""


def hash_token(token: str, salt: str | None = None) -> str:
    salt = salt if salt is not None else secrets.token_hex(8)
    return f"sha256${salt}${hashlib.sha256((salt + token).encode()).hexdigest()}"


def token_matches(token: str, stored: str) -> bool:
    """Constant-time comparison of a presented token with a stored hash. An empty token or an
    empty stored hash never matches (as in the original)."""
    if not token or not stored or stored.count("$") != 2:
        return False
    _, salt, _ = stored.split("$")
    return hmac.compare_digest(hash_token(token, salt).encode(), stored.encode())


def new_token() -> str:
    return secrets.token_urlsafe(32)


class Entry(Protocol):
    """One configured thing (a data set, a service): immutable, validated by ``from_doc``."""

    @property
    def key(self) -> str:
        """Its unique name within the registry."""
        ...

    def to_doc(self) -> dict[str, Any]:
        """The document stored in the file (with the token hash, which ``from_doc`` takes back)."""
        ...

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Self:
        """Build and validate; ValueError or TypeError says what is wrong."""
        ...


class Contents(Protocol):
    """A registry's whole content: its entries by key, and how it is written to the file."""

    @property
    def entries(self) -> dict[str, Any]: ...

    def to_bytes(self) -> bytes: ...


R = TypeVar("R", bound=Contents)
C = TypeVar("C", bound=Entry)
T = TypeVar("T")


class JsonRegistryFile(Generic[R, C]):
    """A registry on disk. ``current()`` re-reads the file at most every ``check_interval_s``
    when it changed; ``update()`` is read-modify-write under an exclusive lock with an atomic
    rename. ``load`` turns the file's bytes (empty when there is no file) into the contents;
    ``noun`` names an entry in error messages ("data set", "service")."""

    def __init__(
        self, path: Path, load: Callable[[bytes], R], noun: str, check_interval_s: float = 1.0
    ) -> None:
        self.path = path
        self.noun = noun
        self._load = load
        self._check_interval_s = check_interval_s
        self._contents = load(b"")
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        # an atomic rename makes a new inode, so two same-size writes within one mtime tick differ
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def current(self) -> R:
        """The registry as last read; re-read first when the file changed. A file that does not
        parse raises (ValueError) on every call until it is fixed."""
        now = time.monotonic()
        if now - self._checked >= self._check_interval_s:
            self._checked = now
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._contents = self._load(self.path.read_bytes() if stamp else b"")
                self._stamp = stamp
        return self._contents

    def reload(self) -> R:
        self._checked = 0.0
        self._stamp = None
        return self.current()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def update(self, change: Callable[[R], T]) -> T:
        """Apply ``change(contents) -> result`` to the file's current content and save it. If
        ``change`` raises, the file is left as it was."""
        with self._locked():
            contents = self._load(self.path.read_bytes() if self.path.exists() else b"")
            result = change(contents)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(contents.to_bytes())
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        self.reload()
        return result

    def create(self, config: C, token: str | None = None) -> str:
        """Add an entry; returns its bearer token (generated unless given). Existing → ValueError."""
        token = token or new_token()
        config = _with_token(config, token)

        def change(contents: R) -> None:
            if config.key in contents.entries:
                raise AlreadyExists(f"{self.noun} {config.key} already exists")
            contents.entries[config.key] = config

        self.update(change)
        return token

    def rotate_token(self, key: str, token: str | None = None) -> str:
        """Give an entry a new token (generated unless given); the old one stops working.
        Unknown key → KeyError."""
        token = token or new_token()

        def change(contents: R) -> None:
            contents.entries[key] = _with_token(self._entry(contents, key), token)

        self.update(change)
        return token

    def configure(self, key: str, **settings: Any) -> C:
        """Change some settings of an entry; the result is validated as a whole. Unknown key →
        KeyError; invalid settings → ValueError or TypeError, and nothing changes."""

        def change(contents: R) -> C:
            config: C = self._entry(contents, key)
            updated = type(config).from_doc(config.to_doc() | settings)
            contents.entries[key] = updated
            return updated

        return self.update(change)

    @staticmethod
    def _entry(contents: R, key: str) -> Any:
        config = contents.entries.get(key)
        if config is None:
            raise KeyError(key)
        return config


def _with_token(config: C, token: str) -> C:
    """The entry validated afresh, holding the hash of ``token``."""
    return type(config).from_doc({**config.to_doc(), "token_hash": hash_token(token)})
