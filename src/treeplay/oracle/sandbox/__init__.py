"""Sandboxed execution of untrusted (model-written) code and its tests."""
