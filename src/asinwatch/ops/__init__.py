"""Operational endpoints: health (liveness and readiness of each dependency) and metrics."""
