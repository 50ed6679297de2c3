"""recsys/models package."""
