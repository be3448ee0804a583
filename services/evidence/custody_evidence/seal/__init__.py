"""Sealing: turning intake's completed submissions into locked, recorded evidence items."""
