"""Deploy phase: the registered model put to work (REST serving, the prediction log, packaging)."""
