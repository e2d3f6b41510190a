"""Test-wide settings.

Under CI (the `CI` environment variable), hypothesis runs derandomized: every run explores
the same examples, so a landing is never decided by which random inputs a run drew.
Locally it stays random, to keep finding new counterexamples.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
