"""Tracked products, marketplaces and competitor links."""
