"""Revisions of recmeta's tables, oldest first by ``down_revision``."""
