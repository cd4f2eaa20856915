"""Frames in and results out: sources, sinks and drawing."""
