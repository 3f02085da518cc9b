"""Cross-force reports for analysts: DuckDB queries over the curated dataset (``queries``) and the
page that shows them (``page``)."""
