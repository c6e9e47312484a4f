"""Versioned schema files: vN.sql, applied in order."""
