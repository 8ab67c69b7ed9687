"""User-facing errors and the stage-entry guard that prints them without a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


class SeqlabError(Exception):
    """A problem with the user's input: reported as one line, exit status 1."""


class ConfigError(SeqlabError):
    """``params.yaml`` has an unknown key, a wrong type or an invalid value."""


class DataError(SeqlabError):
    """A corpus or artifact file is missing, malformed or inconsistent."""


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage entry point; a SeqlabError becomes ``error: ...`` and exit 1."""
    try:
        main()
    except SeqlabError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
