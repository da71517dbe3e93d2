"""Feature engineering and the feature store (core layer)."""
