"""Spec validation, the chunked engine loop, run files and sweeps."""
