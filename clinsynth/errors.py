"""One exception type for problems a user can fix: printed as a paragraph, no traceback."""


class ClinsynthError(Exception):
    """A problem with the user's input, configuration or files, explained in plain words."""

    exit_code: int = 2


class CohortRefused(ClinsynthError):
    """The cohort cannot be used as it is (too few patients, too many without --subsample...)."""

    exit_code = 3
