"""Perun user synchroniser: VO membership mirrored into local cloud users and groups."""
