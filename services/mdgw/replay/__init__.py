"""Replay of book_builder journals (``python -m mdgw.replay``); docs/journal.md."""
