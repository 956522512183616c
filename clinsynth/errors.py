"""One exception type for problems a user can fix: printed as a paragraph, no traceback."""


class ClinsynthError(Exception):
    """A problem with the user's input, configuration or files, explained in plain words."""

    exit_code: int = 2


class CohortRefused(ClinsynthError):
    """The cohort cannot be used as it is (too few patients, too many without --subsample...)."""

    exit_code = 3


def describe_validation_error(exc: Exception) -> str:
    """One line per problem of a pydantic ValidationError: ``field.path: message``; joined by ;."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
        for e in exc.errors()  # type: ignore[attr-defined]
    )
