"""``python -m landscape.cli``: the same as the ``landscape`` command."""

from landscape.cli.main import main

main()
