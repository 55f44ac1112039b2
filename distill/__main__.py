"""`python -m distill` is the same as the `distill` command."""

from distill.cli import main

main()
