"""Command-line entry points outside the DAG: check, predict, serve, summary, sync-runs, team server."""
