"""The three datasets every force sends, by name: importable without pyarrow (DAG files use it)."""

DATASETS = ("incidents", "anpr_reads", "seizures")
