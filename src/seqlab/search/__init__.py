"""Search over a trained model (greedy, beam, sampling) and batched decoding of texts; used by decode, train and the CLI."""
