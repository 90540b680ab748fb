"""`python -m postbud` is the `postbud` command."""

from postbud.cli import main

main()
