"""``python -m picorigin``: the same as the ``picorigin`` command."""

from ._cli import main

main()
