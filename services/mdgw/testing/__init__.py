"""Testing helpers that ship with mdgw (the way ``structlog.testing`` does): typed, documented,
used by the tests, benchmarks and fuzzers alike. Nothing in a service imports them.
"""
