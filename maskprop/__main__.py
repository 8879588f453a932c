"""``python -m maskprop``: the command line."""

from maskprop.cli.main import main

raise SystemExit(main())
