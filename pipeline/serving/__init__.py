"""A trained task as a self-contained bundle, its predictor, and the MLflow pyfunc model that serves it."""
