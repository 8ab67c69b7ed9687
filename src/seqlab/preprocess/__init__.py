"""The preprocess stage: encoding splits to piece ids with counted filtering (``encode``), the parquet
shards that train reads (``shards``), and subword regularization's sampled segmentations (``samples``)."""
