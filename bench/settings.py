"""The benchmarks' settings: production's, plus a bare view to compare the API with.

Only the benchmarks' own server uses this module (DJANGO_SETTINGS_MODULE=bench.settings), so the
bare view never exists in a deployment.
"""

from __future__ import annotations

from sandbox_project.settings import *  # noqa: F401,F403

ROOT_URLCONF = "bench.urls"
