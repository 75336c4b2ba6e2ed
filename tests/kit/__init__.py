"""Tests of asinwatch.kit."""
