"""Uploaded files: checks and clean-ups applied before they are stored."""
