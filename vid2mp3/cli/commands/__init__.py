"""The commands: each takes the Context and its parsed arguments and returns the exit code."""
