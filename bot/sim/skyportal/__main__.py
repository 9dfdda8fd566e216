"""`python -m bot.sim.skyportal [options]`: the same as `btsbot sim skyportal [options]`."""

from bot.sim.skyportal.cli import main

raise SystemExit(main())
