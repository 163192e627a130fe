"""Test configuration: under CI, hypothesis draws the same examples every run (reproducible
gating); on a developer's machine it keeps exploring new ones."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
