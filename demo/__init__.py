"""The demo: the whole platform on one machine in an emulated Discord, with a browser playground.

`run_demo()` (demo/orchestrator.py) starts and seeds it; `follow()` (demo/follow.py) runs the playground
read-only for real deployments.
"""
