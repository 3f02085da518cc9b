"""Where data lives and what happened to it: zones (local folders or S3), the one layout of paths
inside them, connections resolved at the edge, and the ledger. Foundations: imports nothing above it."""
