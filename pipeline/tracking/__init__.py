"""MLflow tracking: the task run, the store, the outbox kept while the server is away, and redaction."""
