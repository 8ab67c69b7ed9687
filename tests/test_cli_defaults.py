"""Where `seqlab translate` takes its settings from, and its bounds (issue 17 items 11 and 18).

Inside a project the search defaults are params.yaml:decode (or --params FILE's),
flags override them, and --help says which; sources are cut to the model's trained
length with a counted warning; huge beams are refused and running out of memory is
one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from tiny_checkpoint import write_tiny_checkpoint

from seqlab.cli import main
from seqlab.core.run_config import MAX_SEARCH_ROWS

SRC = Path(__file__).resolve().parents[1] / "src"
LINES = ["twenty-one", "one hundred and five", "seven", "three hundred and thirty-three"]
LONG = "seven hundred and seventy-seven thousand three hundred and thirty-three"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A decisive random model (varied outputs) that says it was trained on sources of at most 4 pieces."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", seed=5, decisive=True,
                                 info={"max_src_len": 4})


def translate(checkpoint: Path, folder: Path, *args: str, lines: list[str] = LINES):
    """`seqlab translate` run from ``folder``; returns click's result (exit code checked by the caller)."""
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        return CliRunner().invoke(main, ["translate", "--model", str(checkpoint), "--max-src-len", "0", *args],
                                  input="".join(f"{line}\n" for line in lines))
    finally:
        os.chdir(cwd)


def project(folder: Path, **decode: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump({"decode": decode}), encoding="utf-8")
    return folder


def test_inside_a_project_the_defaults_are_params_yaml_decode(checkpoint: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    inside = project(tmp_path / "project", max_length=2, beam_size=2, length_penalty=0.0)
    built_in = translate(checkpoint, outside).stdout
    as_params = translate(checkpoint, outside, "--max-length", "2", "--beam-size", "2", "--length-penalty", "0").stdout
    assert built_in != as_params  # so the comparisons below can fail
    assert translate(checkpoint, inside).stdout == as_params
    # a flag still overrides its params.yaml default, and only that one
    assert translate(checkpoint, inside, "--max-length", "200").stdout == translate(
        checkpoint, outside, "--beam-size", "2", "--length-penalty", "0").stdout


def test_params_chooses_another_params_file(checkpoint: Path, tmp_path: Path) -> None:
    other = project(tmp_path / "other", max_length=1) / "params.yaml"
    inside = project(tmp_path / "project", max_length=3)
    one_piece = translate(checkpoint, inside, "--params", str(other))
    assert one_piece.exit_code == 0, one_piece.output
    assert one_piece.stdout == translate(checkpoint, inside, "--max-length", "1").stdout
    assert translate(checkpoint, inside, f"--params={other}").stdout == one_piece.stdout
    assert one_piece.stdout != translate(checkpoint, inside).stdout


def test_help_shows_the_project_defaults_and_says_where_they_came_from(tmp_path: Path) -> None:
    inside = project(tmp_path / "project", max_length=7)
    cwd = Path.cwd()
    os.chdir(inside)
    try:
        in_project = CliRunner().invoke(main, ["translate", "--help"], terminal_width=200).output
        other = CliRunner().invoke(main, ["translate", "--params", "params.yaml", "--help"], terminal_width=200).output
        os.chdir(tmp_path)
        bare = CliRunner().invoke(main, ["translate", "--help"], terminal_width=200).output
    finally:
        os.chdir(cwd)
    assert "Longest output in pieces.  [default: 7;" in in_project
    assert "come from params.yaml:decode" in " ".join(in_project.split())
    assert other == in_project
    assert "Longest output in pieces.  [default: 200;" in bare
    assert "seqlab's built-in decode settings" in " ".join(bare.split())


def test_a_bad_project_params_file_is_one_line(checkpoint: Path, tmp_path: Path) -> None:
    inside = project(tmp_path / "project", beam_size="wide")
    result = translate(checkpoint, inside)
    assert result.exit_code == 1
    assert result.output.splitlines() == ["Error: params.yaml: decode.beam_size: expected int, got str 'wide'"]


def test_sources_are_cut_to_the_trained_length_with_a_counted_warning(checkpoint: Path, tmp_path: Path) -> None:
    lines = ["two", LONG, "six", LONG]  # of 2, 27, 2 and 27 pieces
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(main, ["translate", "--model", str(checkpoint)],
                                    input="".join(f"{line}\n" for line in lines))
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: 2 of 4 sources truncated to 4 pieces (first: line 2); --max-src-len sets the limit, 0 for none"]
    assert result.stdout == translate(checkpoint, tmp_path, "--max-src-len", "4", lines=lines).stdout
    unlimited = translate(checkpoint, tmp_path, lines=lines)  # --max-src-len 0
    assert unlimited.stderr == "" and unlimited.stdout != result.stdout


def test_beams_beyond_the_bound_are_refused(checkpoint: Path, tmp_path: Path) -> None:
    result = translate(checkpoint, tmp_path, "--beam-size", str(MAX_SEARCH_ROWS + 1))
    assert result.exit_code == 2
    assert f"--beam-size: must be at most {MAX_SEARCH_ROWS}" in result.output
    samples = translate(checkpoint, tmp_path, "--strategy", "sample", "--n-best", str(MAX_SEARCH_ROWS + 1))
    assert samples.exit_code == 2 and f"--n-best: must be at most {MAX_SEARCH_ROWS}" in samples.output
    assert translate(checkpoint, tmp_path, "--beam-size", str(MAX_SEARCH_ROWS), "--max-length", "2",
                     lines=["seven"]).exit_code == 0


OUT_OF_MEMORY = """
import resource, sys
import torch
from seqlab.cli import main
size = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + 2**30, size + 2**30))  # 1 GiB more than torch needs idle
main(sys.argv[1:])
"""


def test_out_of_memory_is_one_line(checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text(f"{' '.join([LONG] * 40)}\n" * 8, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    args = ["translate", "--model", str(checkpoint), "--input", "in.txt", "--beam-size", str(MAX_SEARCH_ROWS),
            "--max-src-len", "0", "--max-length", "3", "--device", "cpu", "--no-progress"]
    proc = subprocess.run([sys.executable, "-c", OUT_OF_MEMORY, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("Error: out of memory searching 8 sentences of up to ")
    assert proc.stderr.endswith(" pieces with 1000 rows each on cpu: lower the beam size, batch size or batch tokens\n")
