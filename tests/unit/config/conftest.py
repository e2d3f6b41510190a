"""Fixtures for the config tests: the Istio CRD schema and the fixture directory."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT / "python") not in sys.path:  # running without an installed meshcore
    sys.path.insert(0, str(ROOT / "python"))
