"""``make bench``: the gateway's throughput and latency, measured with real processes.

Run from the repository root with the project's Python::

    .venv/bin/python -m scripts.bench.run            # the default run (< 3 minutes)
    .venv/bin/python -m scripts.bench.run --quick    # a seconds-long smoke run
    .venv/bin/python -m scripts.bench.run --long     # scale + 10-minute memory soak

Modules (each helper process is ``python -m scripts.bench.<name>``):

- :mod:`.frames`: deterministic Bybit depth-50 books whose deltas cycle, so the book at any
  ``u`` is known (consumers check what the builder publishes) and no resync ever happens;
- :mod:`.blaster`: raw envelopes PUSHed to the builder, as fast as it takes them or at a rate;
- :mod:`.passthrough`: PULL -> PUB of the same bytes, no parsing: the ceiling of the rig;
- :mod:`.ws_blaster`: a bare websocket server speaking enough Bybit v5 for the ingestor;
- :mod:`.ws_client`: a bare websockets client that only counts (the ingestor's reference);
- :mod:`.consumer`: a SUB (or raw PULL) that counts, checks ``seq``, verifies books and
  records latency samples;
- :mod:`.procs`: starting, watching and stopping the processes, configs, ports, /proc;
- :mod:`.figures`: one function per benchmark; :mod:`.report`: the table and the JSON;
  :mod:`.run`: the driver.

docs/performance.md explains each figure's method and the results.
"""
