"""Listing and pricing recommendations from a versioned rule set."""
