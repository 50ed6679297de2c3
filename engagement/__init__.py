"""The command line's assembly point: the one place that sees every stage."""
