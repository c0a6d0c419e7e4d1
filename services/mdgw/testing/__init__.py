"""The test harness that ships with mdgw, like ``structlog.testing``: typed, documented, and
used alike by the tests, the benchmarks (``make bench``), the fuzzer and the soak.

Everything runs for real: the services as ``python -m mdgw.<service>`` processes on
generated configs, the simulator in-process or as its own process, real ZeroMQ and
websocket sockets.

- :mod:`.processes`: :class:`~.processes.Process`, :class:`~.processes.Service`,
  :class:`~.processes.Helper`; JSON log lines, signals, ``/proc`` CPU and memory;
- :mod:`.endpoints`: ipc directories and reserved tcp ports (no races between the many
  test runs sharing a machine);
- :mod:`.config`: :class:`~.config.Stream`, generated gateway configs, simulator parameters;
- :mod:`.gateway`: :class:`~.gateway.Gateway`, a book_builder and an ingestor on one config;
- :mod:`.truth`: :class:`~.truth.TruthConsumer`, every published book checked against the
  simulator's truth; :func:`~.truth.wait_for`;
- :mod:`.reference`: :class:`~.reference.ReferenceBook`, Bybit's book rules done naively;
- :mod:`.tracked`, :mod:`.hostile`, :mod:`.fuzz`: valid frames with a known book, the
  hostile frame catalogue, the fuzzer;
- :mod:`.soak`: the long run with periodic faults;
- :mod:`.scrape`: ``/metrics`` and ``/health`` of a running service, parsed;
- :mod:`.scrape`: ``/metrics`` and ``/health`` of a running service, parsed;
- :mod:`.bench`: the benchmarks;
- :mod:`.examples`: how many examples a property test runs (fewer on the pure-Python rerun);
- :mod:`.oracles`: reference implementations the production fast paths are tested against
  (``encode_raw``, ``encode_book``, the orjson-based Bybit frame and control decoders).

The command lines are ``scripts/bench.py``, ``scripts/soak.py``, ``scripts/fuzz_builder.py``
and ``scripts/sim_bench.py``. Importing this package imports none of its modules.
"""
