"""A TCP relay that holds every chunk for a fixed time each way: a long link's round trip.

The benchmark's WAN case needs 100 ms of round-trip time on top of a ``tbf``-shaped link, and
``netem`` is not available on our machines. This relay listens on loopback and forwards to the
SFTP server behind the shaped veth pair; each chunk read from one side is written to the other
``delay`` seconds after it arrived, in order. Requests and answers therefore take one round
trip of ``2 × delay`` more, as on a long link; bandwidth stays the ``tbf``'s.

Run it as a process of its own (its timing must not share a GIL with the measured tools)::

    python -m tests.benchmarks.delay_proxy LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS

It prints ``READY <port>`` once it listens (port 0: it picks one) and relays until killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

CHUNK = 256 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(send())
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((loop.time() + delay, data))
    except OSError:
        pass
    queue.put_nowait((loop.time() + delay, b""))
    with contextlib.suppress(OSError):
        await sender


async def _serve(listen: int, host: str, port: int, delay: float) -> None:
    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(host, port)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(
                _pump(client_r, server_w, delay),
                _pump(server_r, client_w, delay),
                return_exceptions=True,
            )
        finally:
            for w in (client_w, server_w):
                w.close()

    server = await asyncio.start_server(relay, "127.0.0.1", listen)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    listen, host, port, delay_ms = argv
    asyncio.run(_serve(int(listen), host, int(port), float(delay_ms) / 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
