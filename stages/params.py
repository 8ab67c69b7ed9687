"""params: check the whole of params.yaml before any stage runs, so a bad value fails ``dvc repro`` first.

DVC removes a stage's outputs before it runs the stage's command, so a stage that
then refuses its params has already lost its outputs. This stage depends on every
key of params.yaml and writes a file whose bytes never change; ``prepare`` depends
on that file, which makes DVC run this check first in every ``dvc repro`` and
``dvc exp run`` where params.yaml changed, and rerun nothing downstream when it passes.
"""

from seqlab.core.config import load_config
from seqlab.core.errors import run_stage
from seqlab.core.files import write_text

# The output's whole content: constant, so a passing check never reruns prepare.
VALID = "params.yaml: every key known, every value valid\n"


def main() -> None:
    config = load_config()
    write_text(config.paths.params_ok, VALID)


if __name__ == "__main__":
    run_stage(main)
