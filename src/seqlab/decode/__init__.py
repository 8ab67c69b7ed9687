"""The decode stage's own work beyond search: attention heatmaps."""
