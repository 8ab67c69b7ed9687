"""decode: beam-search the test split with the trained model; write hypotheses and attention heatmaps."""

from pathlib import Path

import torch

from seqlab.core.config import load_config
from seqlab.core.errors import run_stage
from seqlab.core.files import atomic_path, write_text
from seqlab.core.text import read_lines
from seqlab.decode.heatmaps import translation_heatmaps
from seqlab.model.checkpoint import load_checkpoint
from seqlab.model.runtime import limit_kernel_cache, pick_device, seed_everything
from seqlab.search.texts import decode_texts


def main() -> None:
    limit_kernel_cache()
    config = load_config()
    seed_everything(config.seed)
    device = pick_device(config.decode.device)
    loaded = load_checkpoint(config.paths.model, device=device)
    sources = read_lines(Path(config.paths.corpus) / "test.src")
    # One stream for the whole test set, seeded by `seed`: sampling differs across batches and follows the seed.
    generator = torch.Generator(device=device).manual_seed(config.seed)
    results = decode_texts(sources, model=loaded.model, tokenizer=loaded.tokenizer, config=config.decode,
                           device=device, max_src_len=config.preprocess.max_src_len, generator=generator)
    write_text(config.paths.hypotheses, "".join(f"{r.texts[0]}\n" for r in results))
    with atomic_path(config.paths.attention) as folder:
        folder.mkdir()
        for name, figure in translation_heatmaps(results, sources, tokenizer=loaded.tokenizer,
                                                 count=config.evaluate.attention_heatmaps):
            figure.savefig(folder / name, dpi=100)
    cut = sum(r.truncated for r in results)
    print(f"decode: {len(results):,} sentences, beam {config.decode.beam_size} -> {config.paths.hypotheses}"
          + (f" ({cut} sources truncated to {config.preprocess.max_src_len} pieces)" if cut else ""))


if __name__ == "__main__":
    run_stage(main)
