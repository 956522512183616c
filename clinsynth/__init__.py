"""clinsynth: private synthetic longitudinal patient cohorts, audited before export."""

__version__ = "0.1.0"
