"""Adjustments to the libraries the app runs on, each version-guarded in its own module."""
