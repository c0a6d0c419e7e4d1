"""``mdgw top``: a live terminal view of the running gateway (``python -m mdgw.top``)."""
