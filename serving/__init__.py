"""The ranking service: BentoML endpoints, hot path, event store (docs/serving.md)."""
