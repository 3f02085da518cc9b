"""The nightly exchange, one module per DAG stage: land (landing -> raw), process (normalise,
validate, tokenise, split, stage) and publish (staged -> curated/quarantine, manifests), plus the
late-extract check."""
