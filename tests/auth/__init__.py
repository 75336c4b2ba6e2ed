"""Tests of asinwatch.auth."""
