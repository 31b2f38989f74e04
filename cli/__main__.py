"""``python -m mergegate.cli``: the same as the ``mergegate`` console script."""

from .main import main

main()
