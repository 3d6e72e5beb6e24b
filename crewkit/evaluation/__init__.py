"""Evaluation and model selection: model comparison suites, arena ratings, A/B experiments."""
