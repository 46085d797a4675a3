"""Metrics over images the pipelines produce (reconstruction, realism, faithfulness, privacy)."""
