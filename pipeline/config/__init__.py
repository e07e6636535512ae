"""params.yaml: its schema, loading with line-numbered messages, file checks and the project paths."""
