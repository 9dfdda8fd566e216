"""Secrets are masked where text leaves the process, never before the client reads it: with a token short
enough to occur inside ordinary words ("st" in "Annotation already exists"), SkyPortal's answers are still
recognised (the annotation is updated, the comment merged), and what the client raises is still masked."""

from __future__ import annotations

import pytest

from bot.sim.skyportal import SkyPortalSim
from bot.sim.skyportal.seed import load_seed
from bot.skyportal.client import SkyPortalClient
from bot.skyportal.errors import SkyPortalError

SHORT = "st"
OBJ = "ZTF23abhvlji"


@pytest.fixture
def fritz():
    seed = load_seed(None)
    bot = next(u for u in seed["users"] if u["username"] == "btsbot")
    bot["tokens"][0]["id"] = SHORT
    seed["bot_token"] = SHORT
    with SkyPortalSim(seed=seed) as sim:
        yield sim


def test_answers_are_recognised_whatever_the_token(fritz):
    client = SkyPortalClient(fritz.url, SHORT, backoff_s=0.01)
    client.post_source(OBJ, ra=143.7977, dec=83.9734, group_ids=[1001])
    first, created = client.annotate(OBJ, "btsbot", {"btsbot_max_score": 0.9})
    # a second POST without the id (a restart that lost it): 400 "Annotation already exists" -> PUT it
    again, created2 = client.annotate(OBJ, "btsbot", {"btsbot_max_score": 0.95})
    assert created and not created2 and again == first
    assert [a["data"]["btsbot_max_score"] for a in client.annotations(OBJ) if a["origin"] == "btsbot"] == [0.95]
    assert client.upsert_annotation(OBJ, "btsbot", {"btsbot_max_score": 0.97}) == first
    c1 = client.post_comment(OBJ, "BTSbot: first", [1001])
    c2 = client.post_comment(OBJ, "BTSbot: first", [1001])  # "Same comment already exists."
    assert not c1.merged and c2.merged and c2.comment_id == c1.comment_id


def test_what_the_client_raises_is_masked_but_still_readable(fritz):
    client = SkyPortalClient(fritz.url, SHORT, backoff_s=0.01)
    client.post_source(OBJ, ra=143.7977, dec=83.9734, group_ids=[1001])
    client.transport.request("POST", f"/api/sources/{OBJ}/annotations",
                             body={"origin": "btsbot", "data": {"x": 1}}, retry=False)
    with pytest.raises(SkyPortalError) as err:
        client.transport.request("POST", f"/api/sources/{OBJ}/annotations",
                                 body={"origin": "btsbot", "data": {"x": 2}}, retry=False)
    e = err.value
    assert e.status == 400 and e.says("annotation already exists")
    assert SHORT not in str(e) and "<redacted>" in str(e)  # what leaves the process is masked
    assert not e.says("no such words")
    import pickle

    assert not pickle.loads(pickle.dumps(e)).says("annotation already exists")  # the raw text is not pickled
