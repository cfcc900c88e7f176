"""Settings for every test: no timing in tests.

Hypothesis fails an example that takes longer than 200 ms by default. Durations are measured by the
benchmarks (BENCHMARKS.md), never asserted: on a shared 2-core machine a slow example is not a bug.
"""

from hypothesis import settings

settings.register_profile("no-deadline", deadline=None)
settings.load_profile("no-deadline")
