"""The evaluate stage: corpus, sentence and length-bucket scores with sacrebleu and rouge-score."""
