"""Prefect flows and deployments for kgsynth (the library itself never imports Prefect)."""
