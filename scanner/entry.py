"""The ``mlscan`` console entry point.

``mlscan --version`` is answered before click and the CLI package are imported, so the
commonest health check in CI scripts costs about as much as starting Python.
"""

from __future__ import annotations

import sys


def run() -> None:
    if sys.argv[1:] == ["--version"]:
        from scanner import __version__

        sys.stdout.write(f"mlscan, version {__version__}\n")
        return
    from scanner.cli import main

    main()
