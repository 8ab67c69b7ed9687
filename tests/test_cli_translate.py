"""`seqlab translate` options: streaming chunks, alignments, search options, sampling."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_checkpoint import write_tiny_checkpoint

from seqlab.cli import SEARCH_OPTIONS, main
from seqlab.core.run_config import DecodeConfig

LINES = ["twenty-one", "one hundred and five", "", "seven", "three hundred and thirty-three", "eighty"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", seed=5, decisive=True)


def translate(checkpoint: Path, *args: str, lines: list[str] = LINES):
    result = CliRunner().invoke(main, ["translate", "--model", str(checkpoint), "--max-length", "8", *args],
                                input="".join(f"{line}\n" for line in lines))
    assert result.exit_code == 0, result.output
    return result.stdout.split("\n")[:-1]


def test_every_decode_param_is_a_translate_option() -> None:
    assert [name for name, _, _ in SEARCH_OPTIONS] == [f for f in DecodeConfig.__dataclass_fields__]


def test_chunked_streaming_gives_the_same_output(checkpoint: Path) -> None:
    whole = translate(checkpoint)
    assert translate(checkpoint, "--chunk-size", "2") == whole
    assert translate(checkpoint, "--batch-tokens", "30", "--batch-size", "2") == whole
    assert len(whole) == len(LINES) and whole[2] == ""


def test_alignments_pair_each_output_piece_with_a_source_piece(checkpoint: Path) -> None:
    rows = translate(checkpoint, "--alignments")
    assert len(rows) == len(LINES)
    for line, row in zip(LINES, rows):
        text, links = row.split("\t")
        if not line:
            assert text == "" and links == ""
            continue
        for link in links.split():
            source, target = map(int, link.split("-"))
            assert source >= 0 and target >= 0
        assert [int(link.split("-")[1]) for link in links.split()] == list(range(len(links.split())))


def test_nbest_rows_with_alignments(checkpoint: Path) -> None:
    rows = [r.split("\t") for r in translate(checkpoint, "--beam-size", "3", "--n-best", "2", "--alignments")]
    assert [int(r[0]) for r in rows] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert all(len(r) == 4 for r in rows)


def test_sampling_is_seeded(checkpoint: Path) -> None:
    args = ["--strategy", "sample", "--temperature", "1.5", "--n-best", "3"]
    first = translate(checkpoint, *args, "--seed", "1")
    assert first == translate(checkpoint, *args, "--seed", "1")
    assert len(first) == 3 * len(LINES)


def test_search_options_reach_the_search(checkpoint: Path) -> None:
    result = CliRunner().invoke(main, ["translate", "--model", str(checkpoint), "--max-length", "1"],
                                input="".join(f"{line}\n" for line in LINES))
    assert result.exit_code == 0
    one_piece = result.stdout.split("\n")[:-1]
    assert all(" " not in text.strip() for text in one_piece)  # a single piece is at most one word
    assert any(" " in text.strip() for text in translate(checkpoint))


def test_bad_combination_is_a_usage_error(checkpoint: Path) -> None:
    result = CliRunner().invoke(main, ["translate", "--model", str(checkpoint), "--beam-size", "2", "--n-best", "3"],
                                input="one\n")
    assert result.exit_code == 2
    assert "--n-best" in result.output
