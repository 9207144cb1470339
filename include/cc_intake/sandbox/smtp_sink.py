"""An SMTP sink for the sandbox: aiosmtpd in a thread, every message kept as a ``.eml`` file.

Nothing is relayed. Files are named ``<arrival number>-<UTC time>.eml`` so that a plain sort
gives the arrival order; the envelope is prepended as ``X-Envelope-From``/``X-Envelope-To``
headers because Bcc recipients appear nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email
import email.policy
import itertools
import threading
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from include.cc_intake.layout import atomic_writer


class _Controller(Controller):
    """aiosmtpd's controller, taught port 0: it must learn the bound port before its self-check."""

    def _trigger_server(self) -> None:
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._sink._store(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        return "250 Message accepted for delivery"


class SmtpSink:
    """SMTP server on 127.0.0.1 writing each message into ``folder``; context manager.

    :param folder: where the ``.eml`` files go (created if missing).
    :param port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
    """

    def __init__(self, folder: Path, *, port: int = 0, host: str = "127.0.0.1") -> None:
        self.folder = Path(folder)
        self.host = host
        self.port = port
        self._requested_port = port
        self._controller: _Controller | None = None
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    def start(self) -> int:
        """Start listening; return the port."""
        if self._controller is not None:
            return self.port
        self.folder.mkdir(parents=True, exist_ok=True)
        # Continue numbering after messages kept from an earlier run on the same folder.
        self._counter = itertools.count(len(list(self.folder.glob("*.eml"))) + 1)
        controller = _Controller(_Handler(self), hostname=self.host, port=self._requested_port)
        controller.start()
        self._controller = controller
        self.port = controller.port
        return self.port

    def stop(self) -> None:
        """Stop the server and join its thread."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
        self.port = self._requested_port

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def paths(self) -> list[Path]:
        """The stored ``.eml`` files, in arrival order."""
        return sorted(self.folder.glob("*.eml"))

    def messages(self) -> list[EmailMessage]:
        """Every stored message, parsed, in arrival order."""
        out = []
        for path in self.paths():
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out

    def clear(self) -> None:
        """Forget every stored message."""
        for path in self.paths():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _store(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> Path:
        envelope = (
            f"X-Envelope-From: <{mail_from}>\r\nX-Envelope-To: {', '.join(rcpt_tos)}\r\n"
        ).encode()
        with self._lock:
            number = next(self._counter)
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
            path = self.folder / f"{number:06d}-{stamp}.eml"
            # Alerts may quote file names of personal recordings: keep the mailbox private.
            with atomic_writer(path, "sink", binary=True, mode=0o600) as handle:
                handle.write(envelope + content)
        return path
