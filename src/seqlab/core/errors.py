"""User-facing errors and the stage-entry guard that prints them without a traceback."""

from __future__ import annotations

import signal
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
        leaving()
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        leaving()
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        leaving()


def leaving() -> None:
    """From here on Ctrl-C or SIGTERM ends the process at once, without Python's handler.

    A second signal on the way out (torchrun sends its closing SIGTERM twice; a
    user presses Ctrl-C again) would otherwise raise KeyboardInterrupt inside
    interpreter shutdown, whose finalizers print it as a traceback. Whatever the
    stage wrote atomically was already settled when its blocks unwound.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
