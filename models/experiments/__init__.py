"""Scripts that produce the results tables and figures of the README."""
