"""Reading what forces send: contracts, the CSV/JSON Lines/fixed-width readers, normalisation to the
canonical schema, and pulls from a force's own SQL database."""
