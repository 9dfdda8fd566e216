"""A local stand-in for Kowalski's HTTP API, for tests and demos (`btsbot sim kowalski`).

The real, unmodified penquins client talks to it exactly as to Kowalski (contract:
docs/contracts.md, the Kowalski sections): `POST /api/auth`, `GET /` (ping) and `POST /api/queries`
(info/catalog_names, find, find_one, count_documents, estimated_document_count, aggregate).
Queries run on mongomock, so filter/projection/sort/pipeline semantics are Mongo's, not ours.

Alerts are ingested like Kowalski does: `ZTF_alerts` gets each alert without `prv_candidates`/`fp_hists`
(`_id` a Mongo ObjectId, `coordinates` added), `ZTF_alerts_aux` one document per object: `cross_matches`
(an empty list per configured catalog), the union of the `prv_candidates` (null fields stripped, `$addToSet`)
and, for objects new at their first alert, `fp_hists` (formatted as Kowalski's `format_fp_hists`; aux_docs.py).
An alert becomes visible once the simulated clock
(`bot.sim.clock.SimClock`) reaches its `visible_at` (default `candidate.jd`); ingestion happens at the start
of each request and is never undone (moving the clock back does not hide ingested alerts).

By job: auth.py (JWTs, `/api/auth`), coordinates.py (what the ingester adds), queries.py (the query runner),
aux_docs.py (the ZTF_alerts_aux document), ingest.py (staging and ingestion into mongomock), handler.py (HTTP: faults, routes, answers), server.py
(`KowalskiSim`), cli.py (`btsbot sim kowalski`; its parser is bot/sim_cli.py).
"""

from bot.sim.kowalski.auth import make_jwt, verify_jwt
from bot.sim.kowalski.ingest import ALERTS, AUX
from bot.sim.kowalski.server import KowalskiSim
from bot.sim_cli import register_kowalski as register_cli
from bot.sim_cli import run_cli

__all__ = ["ALERTS", "AUX", "KowalskiSim", "make_jwt", "register_cli", "run_cli", "verify_jwt"]
