"""Settings for the whole suite.

Hypothesis' per-example deadline (200 ms by default) measures wall-clock time, so on a
shared, busy 2-core machine (CI) a slow example fails a test that is right. The suite's
property tests bound their work by ``max_examples`` instead: no deadline, for every test.
"""

from hypothesis import settings

settings.register_profile("mdgw", deadline=None)
settings.load_profile("mdgw")
