"""Shared contracts of the eCRM pipeline: event models, the topic registry, settings helpers."""
