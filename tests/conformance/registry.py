"""Every conformance check, in run order: the Inferno-style checks first (read-only,
or cleaning up what they create), then the black-box e2e table, which updates and
deletes seeded records in a fixed order."""

from __future__ import annotations

from . import inferno, links  # noqa: F401 - they register their checks
from .checks import REGISTRY, Check
from .table import TABLE

INFERNO: list[Check] = list(REGISTRY)
CHECKS: list[Check] = INFERNO + TABLE
