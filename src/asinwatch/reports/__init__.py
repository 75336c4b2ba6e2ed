"""Competitive reports: own product vs linked competitors, versioned and stored."""
