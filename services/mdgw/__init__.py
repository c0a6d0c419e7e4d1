"""mdgw: a market-data gateway for Bybit v5 public streams."""

# Selects the compiled hot path when a build for exactly these sources exists (see
# mdgw.compiled); it must run before any mdgw.core module is imported.
from mdgw import compiled as compiled
