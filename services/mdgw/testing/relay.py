"""A TCP relay that delivers every byte ``delay`` seconds late: a slower network path.

Tests put it between one ingestor and the simulator (A/B feeds: the builder must follow the
faster path, and a snapshot arriving late through it must not roll a book back), and the
network-namespace test uses it where the kernel has no ``netem`` qdisc. Order is kept in
both directions; nothing is lost; a connection closing on one side closes the other once
what was read before has been delivered.

In process: ``async with DelayRelay(("127.0.0.1", sim.port), delay=0.3) as relay:`` then
connect to ``relay.port``. As a process::

    python -m mdgw.testing.relay --listen 127.0.0.1:7300 --to 10.0.0.1:7200 --delay 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Sequence
from types import TracebackType

__all__ = ["DelayRelay", "main"]

_CHUNK = 65536


class DelayRelay:
    """Listens on ``listen`` (port 0: any free one), forwards to ``target``, ``delay`` late."""

    def __init__(
        self, target: tuple[str, int], *, delay: float, listen: tuple[str, int] = ("127.0.0.1", 0)
    ) -> None:
        self.target = target
        self.delay = delay
        self.listen = listen
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "the relay is not running"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, *self.listen)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # Closing the sockets ends every pipe; cancelling the connection tasks instead would
        # make asyncio log their CancelledError (start_server's callback reads it).
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)

    async def __aenter__(self) -> DelayRelay:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)
            return
        self._writers.add(up_writer)
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            for w in (writer, up_writer):
                w.close()
                self._writers.discard(w)
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                try:
                    data = await reader.read(_CHUNK)
                except OSError:
                    data = b""
                queue.put_nowait((loop.time() + self.delay, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await sender
            writer.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not host:port")
    return host, int(port)


async def _serve(listen: tuple[str, int], target: tuple[str, int], delay: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with DelayRelay(target, delay=delay, listen=listen) as relay:
        print(f"relay listening on {listen[0]}:{relay.port} -> {target[0]}:{target[1]}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mdgw.testing.relay", description="TCP relay with a fixed delay."
    )
    parser.add_argument("--listen", type=_address, required=True, metavar="HOST:PORT")
    parser.add_argument("--to", type=_address, required=True, metavar="HOST:PORT")
    parser.add_argument("--delay", type=float, required=True, metavar="SECONDS")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.listen, args.to, args.delay))


if __name__ == "__main__":
    main()
