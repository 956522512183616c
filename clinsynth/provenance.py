"""What a manifest records so that a run can be reproduced: versions, platform, hashes."""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from importlib import metadata

import clinsynth

PACKAGES = ["numpy", "pandas", "torch", "opacus", "sdv", "scikit-learn", "typer", "pydantic"]


def package_versions() -> dict[str, str]:
    versions = {"clinsynth": clinsynth.__version__, "python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def environment() -> dict[str, str]:
    return {"platform": platform.platform(), "machine": platform.machine()}


def utc_now() -> str:
    """Time the *run* happened (not patient data): fine to record."""
    return datetime.now(UTC).isoformat(timespec="seconds")
