"""`btsbot labels`: the labels CSV of a Fritz group's sources, for `btsbot backtest --labels`.

The reading and the mapping are `bot.skyportal.labels` (its docstring is the contract); here: the arguments,
the client built from the config as the daemon builds it (skyportal.url, FRITZ_TOKEN, the rate limit and
retries of the skyportal: section), the file and the one-line summary.
"""

from __future__ import annotations

import argparse
import re
import sys

from bot.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _check_window, _die, _load_config, jd_window

DESCRIPTION = """\
Read, through the SkyPortal API of skyportal.url with the configured token (FRITZ_TOKEN), the sources saved
to a group (e.g. the BTS group) in a window, their classifications and the follow-up requests, and write
`objectId,label,saved_at,triggered_at` as `btsbot backtest --labels` reads it:

  label         1: a human classification (ml: false) matches --positive-types; 0: the source has human
                classifications and none matches; a source with none is left out (counted on stderr;
                --unclassified 0 writes it as 0)
  saved_at      when a human saved it to the group (empty when the bot, a user flagged is_bot or an
                --exclude-user saved it; the group's row keeps its first save time)
  triggered_at  its first follow-up request by a human, whatever its status (deleted, rejected and failed
                ones included: the request is when a human asked for a spectrum); only requests on the
                allocations of the token user's groups are visible
  times         ISO UTC (2023-10-05T10:37:55.123456Z)

Every page is read (--page-size sources per request, SkyPortal's default 100), at the daemon's rate limit
(skyportal.rate_limit_per_s). The token's own user (GET /api/internal/profile) is the bot: run it with the
bot's token. A summary line goes to stderr: sources, positives, negatives, unclassified, pages read."""


def register(sub) -> None:
    from bot.skyportal.labels import FRITZ_POSITIVE_TYPES, MAX_SOURCES_PER_PAGE, SOURCES_PER_PAGE

    p = sub.add_parser("labels", help="write the labels CSV of a Fritz group's sources (for backtest --labels)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="exit codes: 0 written; 1 Fritz unreachable or no labelled source; 2 usage or "
                              "configuration error (no token, a refused token, a group the token cannot read)")
    p.add_argument("--config", metavar="FILE", help="the config whose skyportal: section (and FRITZ_TOKEN) to use")
    p.add_argument("--group", type=int, required=True, metavar="ID", help="the group whose saved sources to read")
    jd_window(p, "sources saved after this time", "sources saved before this time (default: now)")
    p.add_argument("--out", metavar="FILE", help="the CSV to write (default: stdout)")
    p.add_argument("--positive-types", default=FRITZ_POSITIVE_TYPES, metavar="REGEX",
                   help=f"classifications labelled 1 (re.search; default {FRITZ_POSITIVE_TYPES}: the supernova "
                        "classes of SkyPortal's tdtax taxonomy, and SN...)")
    p.add_argument("--include-ml", action="store_true",
                   help="count machine classifications (ml: true) too (default: human ones only)")
    p.add_argument("--unclassified", choices=("skip", "0"), default="skip",
                   help="a source without a counted classification: left out (default) or labelled 0")
    p.add_argument("--exclude-user", dest="exclude_users", type=int, action="append", default=[], metavar="ID",
                   help="a user id whose saves and requests are not a human's (another bot); repeatable")
    p.add_argument("--page-size", type=int, default=SOURCES_PER_PAGE, metavar="N",
                   help=f"sources per request (1-{MAX_SOURCES_PER_PAGE}, default {SOURCES_PER_PAGE})")
    p.set_defaults(func=cmd_labels)


def fritz_reader(cfg):
    """The SkyPortal client as `btsbot run` builds it (bot.runtime.skyportal_client), without the start checks
    of saving and requesting (a read needs none of its ACLs)."""
    from bot.config import ConfigError, secret
    from bot.runtime import FRITZ_CREDENTIALS
    from bot.skyportal.client import SkyPortalClient

    s = cfg.skyportal
    token = secret(s.token)
    if token is None:
        raise ConfigError(f"{FRITZ_CREDENTIALS}: btsbot labels reads Fritz ({s.url}) with a token")
    try:
        return SkyPortalClient(s.url, token, timeout_s=s.timeout_s, rate_limit_per_s=s.rate_limit_per_s,
                               max_retries=s.max_retries, backoff_s=s.backoff_s,
                               followup_timeout_s=s.followup_timeout_s)
    except ValueError as exc:
        key = "skyportal.url" if "url" in str(exc) else FRITZ_CREDENTIALS
        raise ConfigError(f"{key}: {exc}") from None


def cmd_labels(args) -> int:
    from bot.runtime import FRITZ_CREDENTIALS
    from bot.skyportal.errors import SkyPortalError
    from bot.skyportal.labels import MAX_SOURCES_PER_PAGE, GroupNotReadable, read_fritz_labels, write_labels_csv

    _check_window(args)
    if not 1 <= args.page_size <= MAX_SOURCES_PER_PAGE:
        return _die(f"--page-size must be 1-{MAX_SOURCES_PER_PAGE} (SkyPortal caps numPerPage at "
                    f"{MAX_SOURCES_PER_PAGE}), not {args.page_size}", EXIT_USAGE)
    try:
        re.compile(args.positive_types)
    except re.error as exc:
        return _die(f"--positive-types {args.positive_types!r} is not a regular expression: {exc}", EXIT_USAGE)
    cfg = _load_config(args)
    client = fritz_reader(cfg)
    try:
        result = read_fritz_labels(client, args.group, args.since, args.until, positive=args.positive_types,
                                   include_ml=args.include_ml, exclude_users=args.exclude_users,
                                   page_size=args.page_size)
    except GroupNotReadable as exc:
        return _die(str(exc), EXIT_USAGE)
    except SkyPortalError as exc:
        if exc.status == 401:
            return _die(f"{FRITZ_CREDENTIALS}: Fritz at {cfg.skyportal.url} refused the token: {exc.message}",
                        EXIT_USAGE)
        raise
    finally:
        client.close()
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="") as fh:
            written = write_labels_csv(result.rows, fh, args.unclassified)
    else:
        written = write_labels_csv(result.rows, sys.stdout, args.unclassified)
    rows = result.rows
    unclassified = (f"{result.unclassified} unclassified (skipped)" if args.unclassified == "skip"
                    else f"{result.unclassified} unclassified (written as 0)")
    print(f"btsbot: group {args.group}: {len(rows)} sources, {result.positives} positives, {result.negatives} "
          f"negatives, {unclassified}; {sum(r.saved_at is not None for r in rows)} saved by a human, "
          f"{sum(r.triggered_at is not None for r in rows)} triggered by a human; {written} rows written "
          f"to {args.out or 'stdout'}; pages read: {result.source_pages} of sources, {result.followup_pages} of "
          f"follow-up requests", file=sys.stderr)
    if not written:
        return _die(f"no labelled source in group {args.group} in that window: backtest --labels cannot use "
                    "the file", EXIT_FAILED)
    return EXIT_OK
