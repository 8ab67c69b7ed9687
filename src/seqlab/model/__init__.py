"""The attention seq2seq model: encoder, attention, decoder, their recurrences, checkpoints, where it runs."""
