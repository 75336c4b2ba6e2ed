"""Tests of the pure analytics layer: KPIs, detectors, lifecycle, rules, reports."""
