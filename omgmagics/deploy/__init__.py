"""Packaging and serving (core layer, phase 4): bundles, the HTTP server, staging validation, the
traffic-splitting router for canary and blue-green rollouts, cluster manifests and the runbook.

Importing this package is free; FastAPI, uvicorn, httpx, mlflow and the model libraries are imported
inside the functions (and the server process) that use them.
"""
