"""``make bench``: the gateway's throughput and latency, measured with real processes.

Run from the repository root with the project's Python (``scripts/bench.py`` calls
:func:`mdgw.testing.bench.run.main`)::

    .venv/bin/python scripts/bench.py            # the default run (< 4 minutes)
    .venv/bin/python scripts/bench.py --quick    # a seconds-long smoke run
    .venv/bin/python scripts/bench.py --long     # scale + 10-minute memory soak

Helper processes (each ``python -m mdgw.testing.bench.<name>``, started through
:class:`mdgw.testing.processes.Helper`):

- :mod:`.frames`: deterministic Bybit depth-50 books whose deltas cycle, so the book at any
  ``u`` is known (consumers check what the builder publishes) and no resync ever happens;
- :mod:`.blaster`: raw envelopes PUSHed to the builder, as fast as it takes them or at a rate;
- :mod:`.passthrough`: PULL -> PUB of the same bytes, no parsing: the ceiling of the rig;
- :mod:`.hop`: one bare PUB -> SUB hop, or (``--push``, into :mod:`.passthrough`) two: the
  latency floor;
- :mod:`.stream_sender`, :mod:`.stream_relay`: the websocket server's and the ingestor's
  stand-ins in the latency figure's loaded four processes (a paced TCP stream, an asyncio
  reader that stamps and PUSHes);
- :mod:`.ws_blaster`: a bare websocket server speaking enough Bybit v5 for the ingestor;
- :mod:`.ws_client`: a bare websockets client that only counts (the ingestor's reference);
- :mod:`.consumer`: a SUB (or raw PULL) that counts, checks ``seq``, verifies books and
  records latency samples.

The driver's side:

- :mod:`.stage`: one benchmark's directory, processes, endpoints and CPU/RSS sampler;
- :mod:`.measure`: what the figures share (timings, rates, counters, correctness);
- one module per figure: :mod:`.throughput`, :mod:`.latency`, :mod:`.ingestor`
  (``make bench``), :mod:`.scale`, :mod:`.memory` (``make bench-long``);
- :mod:`.profiling` (``--profile``); :mod:`.report`: the table and the JSON; :mod:`.run`:
  the driver; :mod:`.simulator`: how fast one simulator process is (``scripts/sim_bench.py``).

docs/performance.md explains each figure's method and the results.
"""
