"""Every stage's foundation: params.yaml as typed config, errors, safe file writes, corpus text files. No torch."""
