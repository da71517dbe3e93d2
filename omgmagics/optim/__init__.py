"""Model optimization (core layer, phase 4): profile, quantize, prune.

Every function takes a project and plain values and returns a :class:`omgmagics.results.Report`.
Heavy libraries (torch, onnxruntime, xgboost, scikit-learn) are imported inside the functions.
"""
