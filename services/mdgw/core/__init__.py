"""Sans-I/O core: Bybit messages, order book, wire format, backoff. No I/O, clocks or randomness here."""
