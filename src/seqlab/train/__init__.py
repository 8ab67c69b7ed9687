"""The train stage: the loop, its state for exact resume, schedules, loss, validation, averaging, batches."""
