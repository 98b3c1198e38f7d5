"""The `plasmavmc` command-line client (`main(argv) -> exit code`)."""

from plasmavmc.cli.main import main

__all__ = ["main"]
