"""Frames in and results out: sources (cameras, streams, files, folders), outputs (images,
image sequences, videos, display), the web view, and the one Pipeline that jetseg segment,
jetseg-camera, jetseg.stream() and jetseg bench all run (stream wraps it for Python)."""
