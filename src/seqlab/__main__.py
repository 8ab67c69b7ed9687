"""``python -m seqlab``: the CLI, where the ``seqlab`` script is not on PATH."""

import sys

from seqlab.cli import main

sys.exit(main())
