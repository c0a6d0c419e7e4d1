"""The builder's drain sends the hub's outbox every ``_CHUNK`` messages of a backlog.

Under a backlog the oldest message must reach the PUB socket after its chunk's work, not
after the whole batch's (docs/performance.md, "the builder's batch"). Runs the real
``_drain`` / ``_flush`` on a real hub and an inproc PUB (:mod:`mdgw.testing.bench.drain_inproc`).
"""

from __future__ import annotations

from typing import Any

import pytest
import zmq

from mdgw.book_builder import service
from mdgw.runtime.zmqsock import NOBLOCK
from mdgw.testing.bench.drain_inproc import _Backlog, _builder, _empty
from mdgw.testing.bench.hub_inproc import messages


@pytest.mark.parametrize("backlog", [5, 100, 300])
def test_a_backlog_is_sent_chunk_by_chunk(backlog: int, monkeypatch: pytest.MonkeyPatch) -> None:
    msgs = messages(10, 400, 0)
    ctx: zmq.Context[Any] = zmq.Context()
    raw = _Backlog(msgs, 11)  # conn_up and the 10 snapshots first
    builder, sub = _builder(ctx, raw, 0)
    try:
        assert raw.wake()
        builder._drain()
        _empty(sub)
        hub = builder.hub
        start = raw.at  # the hub gets each message right after it is received
        sent_after: list[int] = []  # messages taken when each payload was sent
        real_send = service.fast_send

        def recording_send(sock: Any, data: bytes, flags: int) -> None:
            real_send(sock, data, flags)
            if flags == NOBLOCK:
                sent_after.append(raw.at - start)

        monkeypatch.setattr(service, "fast_send", recording_send)
        raw.backlog = backlog
        assert raw.wake()
        builder._drain()
        assert raw.at - start == backlog and raw.left == 0
        assert len(sent_after) >= backlog  # every delta publishes a book
        chunk = service._CHUNK
        assert sent_after[0] == min(chunk, backlog)
        # Each send happens after the end of the chunk its message is in, and before the
        # next chunk's first message.
        assert sorted(sent_after) == sent_after
        assert set(sent_after) <= {*range(chunk, backlog + 1, chunk), backlog}
        assert _empty(sub) == 2 * len(sent_after)
        assert hub.stats.gaps == 0 and hub.stats.malformed == 0
    finally:
        builder.pub.close(linger=0)
        sub.close(linger=0)
        ctx.term()
