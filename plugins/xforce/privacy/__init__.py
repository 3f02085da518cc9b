"""Plates as personal data: tokens (HMAC), the restricted token map and audited re-identification,
key rotation, retention and the zone access policies."""
