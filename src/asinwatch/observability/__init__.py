"""Structured JSON logging and Prometheus metrics."""
