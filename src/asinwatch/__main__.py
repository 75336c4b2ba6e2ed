"""`python -m asinwatch` runs the CLI."""

from asinwatch.cli import main

main()
