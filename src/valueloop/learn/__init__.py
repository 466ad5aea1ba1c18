"""Learn: candidates, search, evaluation, model tests, MLflow tracking, registry, reproduce."""
