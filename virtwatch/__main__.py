"""Run the virtwatch command line as `python -m virtwatch`."""

from virtwatch.cli import main

raise SystemExit(main())
