"""Alembic migrations, shipped inside the package so `asinwatch migrate` works anywhere."""
