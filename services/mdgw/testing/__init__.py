"""Test harness that ships with mdgw (like ``structlog.testing``)."""
