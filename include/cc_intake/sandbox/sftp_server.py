"""A provider's SFTP server for the sandbox: asyncssh in its own thread, one folder as its root.

Key authentication only (one login, one authorized client key), a pinned host key, 127.0.0.1.
Clients see ``/`` = the served folder; symbolic links are listed as links (lstat semantics) and
never followed out of the root, so the client under test has to reject them itself. Read-only
by default: the pipeline never writes to a provider's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import posixpath
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncssh
from asyncssh.sftp import (
    ACE4_APPEND_DATA,
    ACE4_WRITE_DATA,
    FXF_APPEND,
    FXF_CREAT,
    FXF_TRUNC,
    FXF_WRITE,
)

from include.cc_intake.sandbox.keys import SandboxKeys

_WRITE_PFLAGS = FXF_WRITE | FXF_APPEND | FXF_CREAT | FXF_TRUNC
_WRITE_ACCESS = ACE4_WRITE_DATA | ACE4_APPEND_DATA
_START_TIMEOUT = 15.0


def _inside(path: bytes, root: bytes) -> bool:
    return path == root or path.startswith(root.rstrip(b"/") + b"/")


class _RootedSFTP(asyncssh.SFTPServer):
    """asyncssh's chrooted SFTP server, hardened: no symlink leads out of the root."""

    def __init__(self, chan: asyncssh.SSHServerChannel, *, owner: SftpServer) -> None:
        super().__init__(chan, chroot=os.fsencode(owner.root))
        self._owner = owner
        self._root = os.fsencode(os.path.realpath(owner.root))

    def _deny(self, what: str) -> asyncssh.SFTPPermissionDenied:
        return asyncssh.SFTPPermissionDenied(f"sandbox server is read-only: {what} refused")

    def map_path(self, path: bytes) -> bytes:
        """Map lexically into the root, then resolve the parent: it must stay inside the root.

        The last component is left unresolved so that lstat/readdir show a link as a link.
        """
        local = super().map_path(path)
        if local.rstrip(b"/") == self._root.rstrip(b"/"):
            return self._root
        parent = os.path.realpath(posixpath.dirname(local))
        if not _inside(parent, self._root):
            raise asyncssh.SFTPNoSuchFile("no such file")
        return posixpath.join(parent, posixpath.basename(local))

    def _followed(self, path: bytes) -> bytes:
        """The local path for an operation that follows links: its target must be inside too."""
        local = self.map_path(path)
        if not _inside(os.path.realpath(local), self._root):
            raise asyncssh.SFTPNoSuchFile("no such file")
        return local

    def stat(self, path: bytes) -> os.stat_result:
        return Path(os.fsdecode(self._followed(path))).stat()

    def statvfs(self, path: bytes) -> Any:
        return os.statvfs(self._followed(path))

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        self._followed(path)
        async for name in super().scandir(path):
            yield name

    def _refuse_unreadable(self, path: bytes) -> None:
        """A file the provider's own disk cannot read: listed and stat'ed, never opened."""
        if posixpath.basename(os.fsdecode(path)) in self._owner.unreadable:
            raise asyncssh.SFTPFailure("I/O error while reading the file")

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if self._owner.read_only and pflags & _WRITE_PFLAGS:
            raise self._deny("open for writing")
        self._followed(path)
        self._refuse_unreadable(path)
        return super().open(path, pflags, attrs)

    def open56(
        self, path: bytes, desired_access: int, flags: int, attrs: asyncssh.SFTPAttrs
    ) -> object:
        if self._owner.read_only and desired_access & _WRITE_ACCESS:
            raise self._deny("open for writing")
        self._followed(path)
        self._refuse_unreadable(path)
        return super().open56(path, desired_access, flags, attrs)

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        delay = self._owner.read_delay
        if delay > 0:
            await asyncio.sleep(delay)
        data = super().read(file_obj, offset, size)
        if not isinstance(data, bytes):  # MaybeAwait in asyncssh's signature
            data = await data
        self._owner._count_bytes(len(data))
        return data

    # Every mutating request is refused when read-only.
    def _guard(self, what: str) -> None:
        if self._owner.read_only:
            raise self._deny(what)

    def write(self, file_obj: object, offset: int, data: bytes) -> Any:
        self._guard("write")
        return super().write(file_obj, offset, data)

    def remove(self, path: bytes) -> Any:
        self._guard("remove")
        return super().remove(path)

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> Any:
        self._guard("mkdir")
        return super().mkdir(path, attrs)

    def rmdir(self, path: bytes) -> Any:
        self._guard("rmdir")
        return super().rmdir(path)

    def rename(self, oldpath: bytes, newpath: bytes) -> Any:
        self._guard("rename")
        return super().rename(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> Any:
        self._guard("rename")
        return super().posix_rename(oldpath, newpath)

    def symlink(self, oldpath: bytes, newpath: bytes) -> Any:
        self._guard("symlink")
        return super().symlink(oldpath, newpath)

    def link(self, oldpath: bytes, newpath: bytes) -> Any:
        self._guard("link")
        return super().link(oldpath, newpath)

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> Any:
        self._guard("setstat")
        return super().setstat(path, attrs)

    def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> Any:
        self._guard("setstat")
        return super().lsetstat(path, attrs)

    def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> Any:
        self._guard("setstat")
        return super().fsetstat(file_obj, attrs)


class _SSHServer(asyncssh.SSHServer):
    """Public-key auth for one login and one key; tracks live connections for drop_connections."""

    def __init__(self, owner: SftpServer) -> None:
        self._owner = owner
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._owner._connections.add(conn)
        self._owner.connections_accepted += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._owner._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self._owner.login and key.public_data == self._owner._client_public


class SftpServer:
    """An SFTP server on 127.0.0.1 serving ``root`` as ``/``, in a background thread.

    :param root: the folder served (the provider's server folder).
    :param keys: the sandbox keys (host key presented, client key authorized).
    :param port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
    :param login: the only user name accepted.
    :param read_only: refuse every write, rename, remove or attribute change.
    :param read_delay: seconds slept before each read reply (slows a transfer down on purpose).

    :attr:`unreadable` holds file names whose opening fails (a fault a test injects: the file is
    listed, its copy fails).
    """

    def __init__(
        self,
        root: Path,
        keys: SandboxKeys,
        *,
        port: int = 0,
        login: str = "intake",
        host: str = "127.0.0.1",
        read_only: bool = True,
        read_delay: float = 0.0,
    ) -> None:
        self.root = Path(root).resolve()
        self.keys = keys
        self.host = host
        self.port = port
        self.login = login
        self.read_only = read_only
        self.read_delay = read_delay
        self.unreadable: set[str] = set()
        self._requested_port = port
        self._client_public = keys.client_key.public_data
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self.connections_accepted = 0  # SSH connections ever made (tests: "never contacted")
        self._bytes_served = 0
        self._bytes_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> int:
        """Start listening; return the port."""
        if self._thread is not None:
            return self.port
        if not self.root.is_dir():
            raise FileNotFoundError(f"sandbox SFTP root {self.root} is not a folder")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(loop, ready), name=f"sandbox-sftp-{self.root.name}", daemon=True
        )
        thread.start()
        ready.wait(_START_TIMEOUT)
        self._loop, self._thread = loop, thread
        try:
            self._acceptor = self._call(self._listen())
        except BaseException:
            self._stop_loop()
            raise
        self.port = self._acceptor.get_port()
        return self.port

    def stop(self) -> None:
        """Close the listener, abort live connections and join the thread."""
        if self._thread is None:
            return
        try:
            self._call(self._shutdown())
        finally:
            self._stop_loop()
            self.port = self._requested_port

    def drop_connections(self) -> int:
        """Abort every live client connection at once (a cut line); return how many."""
        if self._thread is None:
            return 0
        return self._call(self._abort_all())

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def bytes_served(self) -> int:
        """File bytes sent to clients since start (lets a test cut a transfer mid-file)."""
        with self._bytes_lock:
            return self._bytes_served

    def __enter__(self) -> SftpServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------

    def _count_bytes(self, n: int) -> None:
        with self._bytes_lock:
            self._bytes_served += n

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            # asyncssh resolves addresses in the default executor: join its threads too.
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_START_TIMEOUT)

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        self._acceptor = None
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # already closed
                loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(_START_TIMEOUT)

    async def _listen(self) -> asyncssh.SSHAcceptor:
        try:
            return await asyncssh.listen(
                self.host,
                self._requested_port,
                server_host_keys=[self.keys.host_key],
                server_factory=lambda: _SSHServer(self),
                sftp_factory=lambda chan: _RootedSFTP(chan, owner=self),
                allow_scp=False,
                # No agent, no port forwarding, no shell: an SFTP drop box and nothing else.
                agent_forwarding=False,
                allow_pty=False,
                x11_forwarding=False,
                login_timeout=30,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(
                    exc.errno, f"sandbox SFTP port {self.host}:{self._requested_port} is taken"
                ) from exc
            raise

    async def _abort_all(self) -> int:
        conns = list(self._connections)
        for conn in conns:
            conn.abort()
        for conn in conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)
        self._connections.difference_update(conns)
        return len(conns)

    async def _shutdown(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
        await self._abort_all()
