"""Prefect deployments and their entry points for the flows defined in `kgsynth/execution/flow.py`
(the package imports Prefect only there and in `execution/runners.py`, and only when the flows or
the dask runner are used)."""
