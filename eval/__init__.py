"""eval: datasets, metrics and reports (built in a later issue)."""
