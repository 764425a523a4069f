"""``python -m cadenza.cli``: the same as the ``cadenza`` script."""

from __future__ import annotations

from . import main

if __name__ == "__main__":
    main()
