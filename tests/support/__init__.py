"""Shared helpers for the Messenger tests."""
