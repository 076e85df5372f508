"""Bridges from the harness to other evaluation tools (each imports its tool only when used)."""
