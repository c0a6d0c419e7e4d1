"""Sans-I/O core: Bybit messages, order book, wire format, backoff, the hub.

No I/O, clocks or randomness here: they are passed in.
"""
