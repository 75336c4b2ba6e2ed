"""Anomaly detection, the alert lifecycle and alert delivery."""
