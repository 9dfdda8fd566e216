"""Local SkyPortal/Fritz stand-in for tests and demos (`btsbot sim skyportal`).

An HTTP server on loopback implementing the endpoints the bot uses (auth, groups, allocations,
sources, source_groups, comments, annotations, follow-up requests with the SEDM facility), with the
semantics, status codes, messages and quirks described in docs/contracts.md (its SP sections): the
`{"status","data","version"}` envelope, 401 for a missing ACL, 400 for most errors, 404 only where
SkyPortal sends it, idempotent POST /api/sources, the rolled-back 400 of POST /api/source_groups,
comment de-duplication, unique annotations per (obj, origin), follow-up constraints answered with
HTTP 200 `ignored: true`, facility refusals as HTTP 200 `rejected: ...`, and submit failures as 400
with a committed `failed to submit: ...` row.

State lives in SQLite (`store.Store`, seeded from `seed.yaml`); faults come from `bot.sim.faults.Faults`.

Where things live:
- server.py: `SkyPortalSim` (lifecycle, test hooks, faults) and the HTTP handler; cli.py: the command line
  (its parser is bot/sim_cli.py, light enough for every `btsbot` command);
- api.py: routes, token/ACL authentication, dispatch, over one handler object per resource (composed, no
  mixins); envelope.py: the handlers' base (response envelope, transaction); context.py: one request (`Ctx`)
  and its query arguments; visibility.py: who may see what; errors.py;
- handlers by resource: groups.py (sysinfo, profile, groups, streams, allocations, instruments), sources.py
  (sources, source_groups; listing.py: the GET /api/sources list's filters, order and pages;
  classifications.py: Classification rows), comments.py (comments, annotations), followup.py (follow-up requests), with
  constraints.py (not_if_* constraints), default_followups.py and facility.py (the simulated SEDM queue);
- validation.py: request-body checks and the SEDM form schema;
- store.py (SQLite access), schema.py (tables), seed.py + seed.yaml (the default seed), coords.py.

    from bot.sim.skyportal import SkyPortalSim
    with SkyPortalSim() as sim:
        url = sim.url          # "http://127.0.0.1:<port>"
        token = sim.token      # the seeded bot token
"""

from bot.sim.skyportal.api import SkyPortalApi
from bot.sim.skyportal.context import Ctx
from bot.sim.skyportal.errors import ApiError
from bot.sim.skyportal.facility import FACILITY_MODES
from bot.sim.skyportal.server import SkyPortalSim
from bot.sim.skyportal.store import Store
from bot.sim.skyportal.validation import (
    FOLLOWUP_POST_SCHEMA,
    SEDM_OBSERVATION_TYPES,
    schema_error,
    sedm_form_schema,
    sedm_prepare_payload,
)
from bot.sim_cli import register_skyportal as register_cli

__all__ = [
    "FACILITY_MODES", "FOLLOWUP_POST_SCHEMA", "SEDM_OBSERVATION_TYPES", "ApiError", "Ctx", "SkyPortalApi",
    "SkyPortalSim", "Store", "register_cli", "schema_error", "sedm_form_schema", "sedm_prepare_payload",
]
