"""The model-side sections of ``params.yaml``: model, train, decode, evaluate.

Frozen dataclasses, built by :func:`seqlab.core.params.build`; each checks what its types cannot say
in ``__post_init__`` and raises a :class:`ConfigError` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

from seqlab.core.errors import ConfigError

# Beams and sample counts beyond this are refused: search memory grows with them, and
# past it a typo (beam 100000) ends in an allocator failure rather than a result.
MAX_SEARCH_ROWS = 1000

# Keys that only one architecture reads. A value other than the default under the other
# arch is an error, so a setting never silently does nothing; defaults may stay in params.yaml,
# which lets `dvc exp run -S model.arch=transformer` switch with nothing else changed.
RNN_ONLY = ("embed_dim", "hidden_dim", "attention_dim", "rnn_type", "bidirectional", "bridge", "attention",
            "input_feeding", "coverage", "coverage_loss_weight")
TRANSFORMER_ONLY = ("model_dim", "heads", "ff_dim", "attention_dropout", "activation_dropout", "activation", "norm", "positions",
                    "max_positions", "scale_embeddings")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture; stored in every checkpoint so it can be rebuilt from it alone."""

    arch: Literal["rnn", "transformer"] = "rnn"  # recurrent encoder-decoder with attention, or Transformer
    embed_dim: int = 128
    hidden_dim: int = 256  # per direction in the encoder; the decoder's size
    attention_dim: int = 256  # Bahdanau's hidden layer
    encoder_layers: int = 1
    decoder_layers: int = 1
    rnn_type: Literal["lstm", "gru"] = "lstm"  # encoder and decoder
    bidirectional: bool = True  # encoder
    bridge: bool = True  # decoder starts from a projection of the encoder's final state (else zeros)
    attention: Literal["bahdanau", "dot", "general", "none"] = "bahdanau"
    input_feeding: bool = True  # the previous attentional vector is fed to the decoder
    dropout: float = 0.1
    share_embeddings: bool = True  # source and target embeddings are one matrix (joint vocab)
    tie_embeddings: bool = False  # decoder output layer reuses the target embedding
    copy: bool = False  # pointer-generator: a learned gate mixes generating and copying source tokens
    coverage: bool = False  # coverage vector fed to the attention (See et al. 2017)
    coverage_loss_weight: float = 1.0  # weight of the coverage loss when coverage is on
    output_vocab: Literal["full", "target"] = "full"  # output layer over every piece, or those the training targets use
    model_dim: int = 256  # transformer: width of the embeddings, attention and residual stream
    heads: int = 4  # transformer: attention heads; model_dim must divide by it
    ff_dim: int = 1024  # transformer: hidden width of each layer's feed-forward block
    # transformer: dropout on the attention weights. On CPU any p > 0 sends attention through the
    # unfused math path of scaled_dot_product_attention (its fused CPU kernel has no dropout).
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0  # transformer: dropout on the feed-forward block's hidden activations
    activation: Literal["relu", "gelu"] = "relu"  # transformer: feed-forward non-linearity
    norm: Literal["pre", "post"] = "pre"  # transformer: layer norm before each block (stable) or after (original)
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"  # transformer: position encoding
    max_positions: int = 256  # transformer: longest source or output, in pieces (BOS/EOS included)
    scale_embeddings: bool = True  # transformer: embeddings times sqrt(model_dim), as in Vaswani et al.

    def __post_init__(self) -> None:
        for name in ("embed_dim", "hidden_dim", "attention_dim", "encoder_layers", "decoder_layers", "model_dim",
                     "heads", "ff_dim", "max_positions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name}: must be at least 1")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"model.{name}: must be in [0, 1)")
        if self.coverage_loss_weight < 0:
            raise ConfigError("model.coverage_loss_weight: must be non-negative")
        if self.output_vocab == "target" and self.copy:  # copying can emit any source piece
            raise ConfigError("model.output_vocab: 'target' cannot be combined with model.copy: true")
        self._check_arch_keys()
        if self.arch == "rnn":
            self._check_rnn()
        else:
            self._check_transformer()

    def _check_arch_keys(self) -> None:
        other = TRANSFORMER_ONLY if self.arch == "rnn" else RNN_ONLY
        for name in other:
            default = ModelConfig.__dataclass_fields__[name].default
            if getattr(self, name) != default:
                raise ConfigError(
                    f"model.{name}: does not apply to model.arch: {self.arch}; leave it at its default {default!r}"
                )

    def _check_rnn(self) -> None:
        if self.tie_embeddings and self.output_vocab == "target":  # the transformer ties the target rows
            raise ConfigError("model.tie_embeddings: with model.arch: rnn it needs model.output_vocab: full")
        if self.tie_embeddings and self.embed_dim != self.hidden_dim:
            raise ConfigError("model.tie_embeddings: needs model.embed_dim == model.hidden_dim")
        if self.attention == "dot" and self.memory_dim != self.hidden_dim:
            raise ConfigError(
                "model.attention: 'dot' needs encoder states the size of the decoder's "
                "(set model.bidirectional: false, or use 'general')"
            )
        if self.copy and self.attention == "none":
            raise ConfigError("model.copy: copying follows the attention; it needs model.attention other than 'none'")
        if self.coverage and self.attention != "bahdanau":
            raise ConfigError("model.coverage: needs model.attention: bahdanau")

    def _check_transformer(self) -> None:
        if self.model_dim % self.heads:
            raise ConfigError(f"model.heads: model.model_dim ({self.model_dim}) must divide by it ({self.heads})")

    @property
    def memory_dim(self) -> int:
        """Size of the encoder's per-position states."""
        if self.arch == "transformer":
            return self.model_dim
        return self.hidden_dim * (2 if self.bidirectional else 1)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, LR schedule, validation, early stopping, averaging and resume."""

    # Where and how fast a run goes, not what it computes: they are left out of the resume
    # fingerprint and of the train stage's params in dvc.yaml, so changing them neither
    # restarts a killed run nor reruns a finished one.
    RUNTIME: ClassVar[tuple[str, ...]] = ("device", "threads", "save_every")

    epochs: int = 4  # the outer budget: passes over the training data
    batch_tokens: int = 2000  # target tokens per batch (padding included)
    lr: float = 0.002  # peak learning rate (reached after warmup)
    clip_norm: float = 1.0  # gradient-norm clipping; 0 turns it off
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0  # torch intra-op threads on CPU; 0 keeps torch's default
    max_steps: int = 0  # stop after this many optimizer steps; 0: epochs alone decide
    optimizer: Literal["adam", "adamw"] = "adam"
    weight_decay: float = 0.0  # adam: L2 added to the gradient; adamw: decoupled decay
    label_smoothing: float = 0.0  # probability mass spread over the vocabulary
    schedule: Literal["constant", "plateau", "inverse_sqrt", "cosine"] = "constant"
    warmup_steps: int = 0  # linear warmup from 0 to lr, for every schedule
    min_lr: float = 0.0  # floor of the cosine and plateau schedules
    plateau_factor: float = 0.5  # plateau: lr is multiplied by this ...
    plateau_patience: int = 2  # ... after more than this many validations without improvement
    valid_every: int = 0  # optimizer steps between validations; 0: at the end of every epoch
    valid_metric: Literal["bleu", "chrf", "rouge_l", "loss"] = "bleu"  # early stopping and best model
    valid_beam_size: int = 1  # beam for the validation metric's decoding; 1 is greedy (fast)
    patience: int = 0  # stop after this many validations without improvement; 0: never
    average_last: int = 0  # average the last k validations' weights at the end; 0 or 1: off
    save_every: int = 100  # optimizer steps between saves of the full training state (resume)
    cpu_bf16: bool = False  # bf16 autocast on CPU too (CUDA always uses it)
    # Processes (torchrun) per node; "auto": one per visible GPU, one on CPU. With nnodes, they are
    # not RUNTIME keys: each global batch is split among the processes, so the effective batch
    # (processes x accumulate x batch_tokens) and the dropout streams, hence the weights, follow them.
    nproc_per_node: int | Literal["auto"] = 1
    nnodes: int = 1  # machines; above 1 every node runs torchrun itself (README: multi-process training)
    accumulate: int = 1  # micro-batches per update and process (no all-reduce between them)
    init_from: str = ""  # a checkpoint whose weights start the run (fine-tuning); "": fresh weights

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_tokens", "valid_beam_size", "nnodes", "accumulate"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}: must be at least 1")
        for name in ("max_steps", "warmup_steps", "plateau_patience", "valid_every", "patience", "average_last",
                     "save_every", "threads", "clip_norm", "weight_decay", "min_lr"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name}: must be non-negative")
        if self.lr <= 0:
            raise ConfigError("train.lr: must be positive")
        if self.min_lr > self.lr:
            raise ConfigError("train.min_lr: must not exceed train.lr")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError("train.label_smoothing: must be in [0, 1)")
        if not 0.0 < self.plateau_factor < 1.0:
            raise ConfigError("train.plateau_factor: must be in (0, 1)")
        if self.nproc_per_node != "auto" and self.nproc_per_node < 1:
            raise ConfigError("train.nproc_per_node: must be at least 1, or auto")
        if self.schedule == "inverse_sqrt" and self.warmup_steps < 1:
            raise ConfigError("train.warmup_steps: the inverse_sqrt schedule needs at least 1 (it decays from there)")

    def results_keys(self) -> dict[str, Any]:
        """The keys that decide the trained weights: every one but :attr:`RUNTIME`."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.RUNTIME}


@dataclass(frozen=True)
class DecodeConfig:
    """Search settings; ``seqlab translate`` takes each as an option of the same name."""

    strategy: Literal["beam", "sample"] = "beam"  # beam (beam_size 1 is greedy) or sampling
    beam_size: int = 5
    n_best: int = 1  # hypotheses (or samples) kept per sentence
    length_penalty: float = 1.0  # GNMT alpha; 0 ranks by raw log-probability
    coverage_penalty: float = 0.0  # GNMT beta; rewards hypotheses that attend to every source piece
    min_length: int = 0  # no EOS before this many pieces ...
    min_length_ratio: float = 0.0  # ... nor before ratio * source pieces
    max_length_ratio: float = 2.0  # hypotheses stop at ratio * source pieces ...
    max_length: int = 200  # ... and never exceed this many pieces
    no_repeat_ngram: int = 0  # forbid repeating any n-gram of this size; 0 is off
    no_adjacent_repeat: int = 0  # forbid an n-gram of up to this many pieces right after itself; 0 is off
    word_safe_copy: bool = False  # an output word is one piece or a whole source word, never pieces glued across words
    unk_spelling: str = ""  # how an unknown word (tokenizer.unk_markers) is written; empty: as the corpus spells it
    top_k: int = 0  # sampling: keep the k most probable tokens; 0 keeps all
    top_p: float = 1.0  # sampling: keep the smallest set with this much probability
    temperature: float = 1.0  # sampling: below 1 sharpens, above 1 flattens
    batch_size: int = 64  # sentences per search batch ...
    batch_tokens: int = 0  # ... and at most this many source pieces x beam per batch; 0 is no limit
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_bf16: bool = False  # on CPU, search with a bf16 copy of the model (CUDA always uses bf16 autocast)

    def __post_init__(self) -> None:
        for name in ("beam_size", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"decode.{name}: must be at least 1")
        for name in ("min_length", "no_repeat_ngram", "no_adjacent_repeat", "top_k", "batch_tokens"):
            if getattr(self, name) < 0:
                raise ConfigError(f"decode.{name}: must be non-negative")
        for name in ("length_penalty", "coverage_penalty", "min_length_ratio"):
            if getattr(self, name) < 0:
                raise ConfigError(f"decode.{name}: must be non-negative")
        for name in ("beam_size", "n_best"):
            if getattr(self, name) > MAX_SEARCH_ROWS:
                raise ConfigError(f"decode.{name}: must be at most {MAX_SEARCH_ROWS}")
        if self.strategy == "beam" and not 1 <= self.n_best <= self.beam_size:
            raise ConfigError("decode.n_best: must be between 1 and decode.beam_size")
        if self.n_best < 1:
            raise ConfigError("decode.n_best: must be at least 1")
        if self.max_length_ratio <= 0:
            raise ConfigError("decode.max_length_ratio: must be positive")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError("decode.top_p: must be in (0, 1]")
        if self.temperature <= 0:
            raise ConfigError("decode.temperature: must be positive")


@dataclass(frozen=True)
class EvaluateConfig:
    """How the test hypotheses are scored; every score is on one 0-100 scale."""

    metrics: tuple[Literal["bleu", "chrf", "ter"], ...] = ("bleu", "chrf", "ter")  # sacrebleu corpus metrics
    rouge_types: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")  # F-measure, Porter stemming
    lowercase: bool = False  # case-insensitive BLEU, chrF and TER (rouge-score always lowercases)
    # sacrebleu's BLEU tokenizer; the ones that download a model (spm, flores*) are left out to stay offline.
    tokenize: Literal["13a", "intl", "zh", "char", "none"] = "13a"
    bootstrap_resamples: int = 1000  # for the 95% intervals; 0 turns them off
    # Fixed rather than the top-level seed so that every experiment on the same test set
    # is resampled with the same sentence indices, which keeps their intervals comparable.
    bootstrap_seed: int = 12345
    length_buckets: tuple[int, ...] = (2, 4, 6, 8)  # upper bounds in source words; one more bucket above
    attention_heatmaps: int = 4  # the decode stage draws this many test sentences' attention

    def __post_init__(self) -> None:
        valid = {"rouge1", "rouge2", "rouge3", "rouge4", "rougeL", "rougeLsum"}
        for name in self.rouge_types:
            if name not in valid:
                raise ConfigError(f"evaluate.rouge_types: unknown {name!r}; valid: {', '.join(sorted(valid))}")
        for key in ("metrics", "rouge_types"):
            names = getattr(self, key)
            if len(set(names)) != len(names):
                raise ConfigError(f"evaluate.{key}: lists a metric twice")
        if not self.metrics and not self.rouge_types:
            raise ConfigError("evaluate.metrics and evaluate.rouge_types: both empty, nothing to score")
        if self.bootstrap_resamples < 0 or self.bootstrap_resamples == 1:
            raise ConfigError("evaluate.bootstrap_resamples: must be 0 (off) or at least 2")
        edges = self.length_buckets
        if not edges or edges[0] < 1 or any(a >= b for a, b in zip(edges, edges[1:])):
            raise ConfigError("evaluate.length_buckets: must be increasing positive word counts, e.g. [10, 20, 40]")
        if self.attention_heatmaps < 0:
            raise ConfigError("evaluate.attention_heatmaps: must be non-negative")
