"""mdgw: a market-data gateway for Bybit v5 public streams."""
