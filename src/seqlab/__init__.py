"""seqlab: a DVC-native pipeline for attention-based sequence-to-sequence generation."""

__version__ = "0.1.0"
