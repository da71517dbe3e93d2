"""Feature engineering and the feature store (core layer).

* :mod:`.spec` - the ``features.yaml`` format: checking and inferring definitions (light);
* :mod:`.extract` - definitions compiled into one fitted scikit-learn pipeline, saved with skops;
* :mod:`.transformers` - the kit's own transformers used by those pipelines;
* :mod:`.select` - feature scoring and selection;
* :mod:`.store` - the file-based, versioned, immutable feature store;
* :mod:`.functions` - the ``@feature_function`` decorator for the project's custom features (light);
* :mod:`.steps` - the phase 2 feature steps on a project's folders, called by ``omg feature``.

scikit-learn, skops and duckdb are imported inside the functions that need them.
"""
