"""Shared test helpers: fakes in real formats, run as a user would run Lepton."""
