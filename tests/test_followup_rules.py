"""Pure follow-up rules (bot/core/followup_rules.py) and SEDM's payload (bot/facilities/sedm.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.core.followup_rules import (
    DATE_FORMAT,
    PAYLOAD_IGNORED_KEYS,
    Plan,
    compare_payloads,
    followup_body,
    format_date,
    parse_timestamp,
    plan_followup,
    priority_key,
    priority_should_update,
    status_kind,
)
from bot.facilities.sedm import SEDM_OBSERVATION_TYPES, sedm_payload

NOW = datetime(2023, 10, 5, 10, 37, 55, 123456)
ALLOC = 2001


def req(id=1, status="submitted", priority=3, obs="IFU", alloc=ALLOC, modified=None, obj="ZTF23abhvlji", **extra):
    payload = {"observation_type": obs, "priority": priority, "start_date": "x", "end_date": "y"}
    payload.update(extra.pop("payload_extra", {}))
    r = {
        "id": id,
        "obj_id": obj,
        "allocation_id": alloc,
        "status": status,
        "payload": payload,
        "created_at": "2023-10-01T00:00:00",
        "modified": modified if modified is not None else (NOW - timedelta(hours=1)).isoformat(),
    }
    r.update(extra)
    return r


def new(priority=3, obs="IFU", **kw):
    return {"observation_type": obs, "priority": priority, **kw}


# ------------------------------------------------------------------------------------------------
# sedm_payload
# ------------------------------------------------------------------------------------------------
class TestSedmPayload:
    def test_adds_kowalski_dates(self):
        out = sedm_payload({"observation_type": "IFU", "priority": 3}, 7, NOW)
        assert out == {
            "observation_type": "IFU",
            "priority": 3,
            "start_date": "2023-10-05T10:37:55.123456",
            "end_date": "2023-10-12T10:37:55.123456",
        }
        # the format is Kowalski's and round-trips with strptime
        datetime.strptime(out["start_date"], DATE_FORMAT)

    def test_microseconds_always_present(self):
        out = sedm_payload({"observation_type": "IFU", "priority": 1}, 0.5, datetime(2023, 1, 1))
        assert out["start_date"] == "2023-01-01T00:00:00.000000"
        assert out["end_date"] == "2023-01-01T12:00:00.000000"

    def test_aware_now_converted_to_utc(self):
        tz = timezone(timedelta(hours=-7))
        out = sedm_payload({"observation_type": "IFU", "priority": 2}, 1, datetime(2023, 10, 5, 3, 0, tzinfo=tz))
        assert out["start_date"] == "2023-10-05T10:00:00.000000"

    def test_input_not_mutated(self):
        p = {"observation_type": "IFU", "priority": 2}
        sedm_payload(p, 7, NOW)
        assert p == {"observation_type": "IFU", "priority": 2}

    @pytest.mark.parametrize("obs", SEDM_OBSERVATION_TYPES[:-1])
    def test_all_observation_types(self, obs):
        assert sedm_payload({"observation_type": obs, "priority": 5}, 7, NOW)["observation_type"] == obs

    def test_mix_n_match_needs_choices(self):
        with pytest.raises(ValueError, match="observation_choices"):
            sedm_payload({"observation_type": "Mix 'n Match", "priority": 2}, 7, NOW)
        with pytest.raises(ValueError, match="observation_choices"):
            sedm_payload({"observation_type": "Mix 'n Match", "priority": 2, "observation_choices": []}, 7, NOW)
        with pytest.raises(ValueError, match="observation_choices"):
            sedm_payload({"observation_type": "Mix 'n Match", "priority": 2, "observation_choices": ["z"]}, 7, NOW)
        with pytest.raises(ValueError, match="duplicate"):
            sedm_payload(
                {"observation_type": "Mix 'n Match", "priority": 2, "observation_choices": ["g", "g"]}, 7, NOW
            )
        out = sedm_payload(
            {"observation_type": "Mix 'n Match", "priority": 2, "observation_choices": ["g", "IFU"]}, 7, NOW
        )
        assert out["observation_choices"] == ["g", "IFU"]

    @pytest.mark.parametrize("prio", [1, 2, 3, 4, 5, 3.0])
    def test_priority_ok(self, prio):
        out = sedm_payload({"observation_type": "IFU", "priority": prio}, 7, NOW)
        assert out["priority"] == int(prio) and isinstance(out["priority"], int)

    @pytest.mark.parametrize("prio", [0, 6, -1, 2.5, "3", None, True, float("nan"), float("inf")])
    def test_priority_bad(self, prio):
        with pytest.raises(ValueError, match="'priority'"):
            sedm_payload({"observation_type": "IFU", "priority": prio}, 7, NOW)

    def test_priority_required(self):
        with pytest.raises(ValueError, match="'priority'"):
            sedm_payload({"observation_type": "IFU"}, 7, NOW)

    @pytest.mark.parametrize("obs", [None, "ifu", "IFU ", "spectrum", 3])
    def test_observation_type_bad(self, obs):
        p = {"priority": 2} if obs is None else {"observation_type": obs, "priority": 2}
        with pytest.raises(ValueError, match="'observation_type'"):
            sedm_payload(p, 7, NOW)

    @pytest.mark.parametrize("key", ["prority", "comment", "urgency", "exptime"])
    def test_unknown_key_named(self, key):
        with pytest.raises(ValueError, match=repr(key)):
            sedm_payload({"observation_type": "IFU", "priority": 2, key: 1}, 7, NOW)

    @pytest.mark.parametrize("key", ["start_date", "end_date"])
    def test_dates_not_configurable(self, key):
        with pytest.raises(ValueError, match=key):
            sedm_payload({"observation_type": "IFU", "priority": 2, key: "2023-01-01"}, 7, NOW)

    def test_optional_fields(self):
        out = sedm_payload(
            {
                "observation_type": "IFU",
                "priority": 2,
                "advanced": False,
                "exposure_time": 300,
                "maximum_airmass": 2.5,
                "maximum_fwhm": 10,
            },
            7,
            NOW,
        )
        assert out["exposure_time"] == 300 and out["maximum_airmass"] == 2.5 and out["advanced"] is False

    @pytest.mark.parametrize(
        "key,val",
        [("advanced", "no"), ("exposure_time", 4000), ("exposure_time", "300"), ("maximum_airmass", 0.5),
         ("maximum_airmass", 3.5), ("maximum_fwhm", 11)],
    )
    def test_optional_fields_bad(self, key, val):
        with pytest.raises(ValueError, match=repr(key)):
            sedm_payload({"observation_type": "IFU", "priority": 2, key: val}, 7, NOW)

    @pytest.mark.parametrize("vd", [0, -1, "7", None, float("nan")])
    def test_validity_days_bad(self, vd):
        with pytest.raises(ValueError, match="validity_days"):
            sedm_payload({"observation_type": "IFU", "priority": 2}, vd, NOW)

    def test_not_a_mapping(self):
        with pytest.raises(ValueError):
            sedm_payload(["IFU"], 7, NOW)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# followup_body
# ------------------------------------------------------------------------------------------------
# FollowupRequestPost's accepted keys (SP 3.1); anything else is a 400 "Unknown field".
ACCEPTED_KEYS = {
    "obj_id", "allocation_id", "payload", "target_group_ids", "status", "not_if_duplicates",
    "source_group_ids", "ignore_source_group_ids", "not_if_classified", "not_if_spectra_exist",
    "not_if_tns_classified", "not_if_tns_reported", "not_if_assignment_exists", "ignore_allocation_ids",
    "radius", "refreshSource", "refreshRequests",
}


class TestFollowupBody:
    def test_full_body(self):
        p = sedm_payload({"observation_type": "IFU", "priority": 3}, 7, NOW)
        b = followup_body("ZTF23abhvlji", ALLOC, p, [1002], target_group_ids=[1001], source_group_ids=[1001])
        assert b == {
            "obj_id": "ZTF23abhvlji",
            "allocation_id": ALLOC,
            "payload": p,
            "not_if_duplicates": True,
            "not_if_classified": True,
            "not_if_spectra_exist": True,
            "not_if_tns_classified": True,
            "radius": 0.5,
            "ignore_source_group_ids": [1002],
            "target_group_ids": [1001],
            "source_group_ids": [1001],
        }
        assert set(b) <= ACCEPTED_KEYS
        assert b["payload"] is not p  # a copy

    def test_empty_lists_omitted(self):
        b = followup_body("ZTF23abhvlji", ALLOC, {"priority": 1}, [])
        assert "ignore_source_group_ids" not in b and "target_group_ids" not in b
        assert "source_group_ids" not in b and "ignore_allocation_ids" not in b
        assert set(b) <= ACCEPTED_KEYS
        for k in ("comment", "watcher_ids", "requester_id"):
            assert k not in b

    def test_ignore_allocation_ids_and_dedupe(self):
        b = followup_body("ZTF1", ALLOC, {}, (1002, 1002), ignore_allocation_ids=[2002])
        assert b["ignore_source_group_ids"] == [1002]
        assert b["ignore_allocation_ids"] == [2002]

    @pytest.mark.parametrize("obj", ["", "ZTF 1", None, 5, "ZTF/1"])
    def test_bad_obj_id(self, obj):
        with pytest.raises(ValueError, match="obj_id"):
            followup_body(obj, ALLOC, {}, [])

    @pytest.mark.parametrize("alloc", ["2001", 2001.0, True, None])
    def test_bad_allocation(self, alloc):
        with pytest.raises(ValueError, match="allocation_id"):
            followup_body("ZTF1", alloc, {}, [])

    def test_bad_group_ids(self):
        with pytest.raises(ValueError, match="ignore_source_group_ids"):
            followup_body("ZTF1", ALLOC, {}, ["1002"])
        with pytest.raises(ValueError, match="target_group_ids"):
            followup_body("ZTF1", ALLOC, {}, [], target_group_ids="1001")
        with pytest.raises(ValueError, match="radius"):
            followup_body("ZTF1", ALLOC, {}, [], radius=0)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
class TestHelpers:
    @pytest.mark.parametrize(
        "s,expected",
        [
            ("2020-11-13T22:11:25.910271", datetime(2020, 11, 13, 22, 11, 25, 910271)),
            ("2020-11-13T22:11:25", datetime(2020, 11, 13, 22, 11, 25)),
            ("2020-11-13 22:11:25.5", datetime(2020, 11, 13, 22, 11, 25, 500000)),
            ("2020-11-13T22:11:25Z", datetime(2020, 11, 13, 22, 11, 25)),
            ("2020-11-13T23:11:25+01:00", datetime(2020, 11, 13, 22, 11, 25)),
            ("2020-11-13T22:11:25.123456789", datetime(2020, 11, 13, 22, 11, 25, 123456)),
            ("2020-11-13", datetime(2020, 11, 13)),
        ],
    )
    def test_parse_timestamp(self, s, expected):
        assert parse_timestamp(s) == expected

    @pytest.mark.parametrize("s", [None, "", "yesterday", 12345, "2020-13-45T00:00:00"])
    def test_parse_timestamp_bad(self, s):
        assert parse_timestamp(s) is None

    def test_format_date(self):
        assert format_date(datetime(2023, 1, 2, 3, 4, 5)) == "2023-01-02T03:04:05.000000"

    @pytest.mark.parametrize(
        "status,kind",
        [
            ("submitted", "submitted"),
            ("Submitted", "submitted"),
            ("completed", "complete"),
            ("Complete: observed", "complete"),
            ("deleted", "deleted"),
            ("failed to submit: boom", "failed"),
            ("rejected: not accepted", "rejected"),
            ("rejected: previously submitted", "rejected"),
            ("pending submission", "pending"),
            ("", None),
            (None, None),
            ("on hold", None),
        ],
    )
    def test_status_kind(self, status, kind):
        assert status_kind(status) == kind

    def test_priority_key(self):
        assert priority_key({"priority": 1}) == "priority"
        assert priority_key({"urgency": 1, "priority": 2}) == "urgency"
        assert priority_key({"Urgency": 1}) == "Urgency"

    def test_priority_should_update(self):
        assert priority_should_update(2, 3, "asc")
        assert not priority_should_update(3, 3, "asc")
        assert not priority_should_update(3, 2, "asc")
        assert priority_should_update(3, 2, "desc")
        assert not priority_should_update(2, 3, "desc")
        with pytest.raises(ValueError):
            priority_should_update(1, 2, "up")

    def test_ignored_keys(self):
        assert PAYLOAD_IGNORED_KEYS == {
            "priority", "urgency", "Urgency", "start_date", "end_date", "advanced", "observation_choices"
        }


class TestComparePayloads:
    def test_equal_and_ignored(self):
        assert compare_payloads(new(2), {"observation_type": "IFU", "priority": 5, "start_date": "a"})

    def test_subset(self):
        assert compare_payloads({"observation_type": "IFU"}, {"observation_type": "IFU", "exposure_time": 300})
        # new has a key the existing lacks -> no match
        assert not compare_payloads({"observation_type": "IFU", "exposure_time": 300}, {"observation_type": "IFU"})

    def test_value_differs(self):
        assert not compare_payloads(
            {"observation_type": "IFU", "exposure_time": 300},
            {"observation_type": "IFU", "exposure_time": 600},
        )

    @pytest.mark.parametrize(
        "new_t,old_t,match",
        [
            ("IFU", "IFU", True),
            ("IFU", "4-shot+IFU", True),
            ("IFU", "3-shot+IFU", True),
            ("IFU", "3-shot (gri)", False),
            ("3-shot (gri)", "4-shot (ugri)", True),
            ("4-shot (ugri)", "3-shot (gri)", False),
            ("3-shot+IFU", "IFU", False),
            ("4-shot+IFU", "4-shot+IFU", True),
        ],
    )
    def test_sedm_observation_type(self, new_t, old_t, match):
        assert compare_payloads({"observation_type": new_t}, {"observation_type": old_t}) is match

    def test_mix_n_match(self):
        mix = {"observation_type": "Mix 'n Match", "observation_choices": ["g", "IFU"]}
        assert compare_payloads(mix, {"observation_type": "3-shot+IFU"})
        assert not compare_payloads(mix, {"observation_type": "3-shot (gri)"})
        assert compare_payloads({"observation_type": "IFU"}, mix)
        assert not compare_payloads({"observation_type": "4-shot (ugri)"}, mix)

    def test_lists_and_dicts(self):
        assert compare_payloads({"f": ["g"]}, {"f": ["g", "r"]})
        assert not compare_payloads({"f": ["u"]}, {"f": ["g", "r"]})
        assert not compare_payloads({"f": ["g"]}, {"f": "gr"})
        assert compare_payloads({"d": {"a": 1}}, {"d": {"a": 1, "b": 2}})
        assert not compare_payloads({"d": {"a": 1}}, {"d": {"a": 2}})
        assert not compare_payloads({"d": {"a": 1}}, {"d": 1})

    def test_existing_not_mapping(self):
        assert not compare_payloads({"observation_type": "IFU"}, None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# plan_followup
# ------------------------------------------------------------------------------------------------
class TestPlan:
    def test_no_requests_post(self):
        p = plan_followup([], ALLOC, new(3), NOW)
        assert p == Plan("post", p.reason) and p.request is None
        assert p.action == "post"

    def test_other_allocation_ignored(self):
        p = plan_followup([req(alloc=2002, status="completed")], ALLOC, new(3), NOW)
        assert p.action == "post"

    def test_allocation_id_as_string_still_matches(self):
        p = plan_followup([req(alloc="2001", status="completed")], ALLOC, new(3), NOW)
        assert p.action == "skip"

    def test_different_payload_post(self):
        p = plan_followup([req(status="submitted", obs="3-shot (gri)")], ALLOC, new(3, "IFU"), NOW)
        assert p.action == "post"
        assert "different payload" in p.reason

    @pytest.mark.parametrize("status", ["completed", "Complete", "deleted"])
    def test_completed_or_deleted_skip(self, status):
        r = req(status=status, priority=1)
        p = plan_followup([r], ALLOC, new(5), NOW)
        assert p.action == "skip" and p.request["id"] == r["id"]
        assert ("complete" in p.reason) or ("deleted" in p.reason)

    def test_recent_failed_skip(self):
        r = req(status="failed to submit: boom", modified=(NOW - timedelta(hours=11, minutes=59)).isoformat())
        p = plan_followup([r], ALLOC, new(3), NOW)
        assert p.action == "skip" and "failed" in p.reason

    def test_old_failed_post(self):
        r = req(status="failed to submit: boom", modified=(NOW - timedelta(hours=12, seconds=1)).isoformat())
        assert plan_followup([r], ALLOC, new(3), NOW).action == "post"

    @pytest.mark.parametrize(
        "modified",
        [
            "2023-10-05T00:00:00",  # no microseconds (Kowalski's strict %f parse fails here)
            "2023-10-05T00:00:00.5",
            "2023-10-05 00:00:00.000001",
            "2023-10-05T00:00:00Z",
            "2023-10-05T02:00:00+02:00",
        ],
    )
    def test_failed_lenient_timestamps(self, modified):
        # ~10.6 h before NOW -> still blocks
        p = plan_followup([req(status="failed to submit: x", modified=modified)], ALLOC, new(3), NOW)
        assert p.action == "skip"

    def test_failed_timestamps_old_lenient(self):
        p = plan_followup([req(status="failed to submit: x", modified="2023-10-04T10:00:00")], ALLOC, new(3), NOW)
        assert p.action == "post"

    def test_failed_unparseable_timestamp_blocks(self):
        r = req(status="failed to submit: x", modified="garbage")
        r["created_at"] = None
        assert plan_followup([r], ALLOC, new(3), NOW).action == "skip"

    def test_failed_falls_back_to_created_at(self):
        r = req(status="failed to submit: x")
        del r["modified"]
        r["created_at"] = "2023-09-01T00:00:00"
        assert plan_followup([r], ALLOC, new(3), NOW).action == "post"

    def test_aware_now(self):
        r = req(status="failed to submit: x", modified="2023-10-05T00:00:00")
        aware = NOW.replace(tzinfo=timezone.utc) + timedelta(hours=3)  # 13.6 h later -> expired
        assert plan_followup([r], ALLOC, new(3), aware).action == "post"

    def test_rejected_does_not_block(self):
        assert plan_followup([req(status="rejected: queue full")], ALLOC, new(3), NOW).action == "post"

    def test_pending_recent_blocks_by_default(self):
        r = req(status="pending submission")
        p = plan_followup([r], ALLOC, new(3), NOW)
        assert p.action == "skip" and "pending" in p.reason
        # production behaviour (Kowalski ignores pending) when disabled
        assert plan_followup([r], ALLOC, new(3), NOW, pending_blocks=False).action == "post"

    def test_pending_old_does_not_block(self):
        r = req(status="pending submission", modified=(NOW - timedelta(days=2)).isoformat())
        assert plan_followup([r], ALLOC, new(3), NOW).action == "post"

    def test_unknown_status_ignored(self):
        assert plan_followup([req(status="on hold")], ALLOC, new(3), NOW).action == "post"

    def test_submitted_higher_priority_update(self):
        r = req(status="submitted", priority=2, payload_extra={"exposure_time": 300})
        p = plan_followup([r], ALLOC, new(4), NOW)
        assert p.action == "update"
        assert p.request["id"] == r["id"]
        # full existing payload with the new priority (PUT replaces the payload wholesale)
        assert p.update_payload == {**r["payload"], "priority": 4}

    @pytest.mark.parametrize("newp", [1, 2, 3])
    def test_submitted_not_higher_skip(self, newp):
        p = plan_followup([req(status="submitted", priority=3)], ALLOC, new(newp), NOW)
        assert p.action == "skip" and p.update_payload is None
        assert "already submitted" in p.reason

    def test_desc_order(self):
        r = req(status="submitted", priority=3)
        assert plan_followup([r], ALLOC, new(2), NOW, "desc").action == "update"
        assert plan_followup([r], ALLOC, new(4), NOW, "desc").action == "skip"
        with pytest.raises(ValueError):
            plan_followup([r], ALLOC, new(4), NOW, "sideways")

    def test_least_urgent_match_taken(self):
        # Kowalski sorts matches by priority (asc: lowest first) and acts on the first
        a = req(id=1, status="submitted", priority=4)
        b = req(id=2, status="submitted", priority=2)
        p = plan_followup([a, b], ALLOC, new(3), NOW)
        assert p.action == "update" and p.request["id"] == 2
        # desc: the highest number is the least urgent; 3 outranks 4 there
        p = plan_followup([a, b], ALLOC, new(3), NOW, "desc")
        assert p.action == "update" and p.request["id"] == 1

    def test_completed_least_urgent_skips(self):
        a = req(id=1, status="completed", priority=1)
        b = req(id=2, status="submitted", priority=2)
        p = plan_followup([b, a], ALLOC, new(5), NOW)
        assert p.action == "skip" and p.request["id"] == 1

    def test_observation_type_special_case(self):
        r = req(status="submitted", obs="3-shot+IFU", priority=2)
        p = plan_followup([r], ALLOC, new(3, "IFU"), NOW)
        assert p.action == "update"
        p = plan_followup([r], ALLOC, new(3, "4-shot+IFU"), NOW)
        assert p.action == "post"

    def test_ignored_keys_do_not_prevent_match(self):
        r = req(status="submitted", priority=2, payload_extra={"advanced": True, "observation_choices": ["g"]})
        p = plan_followup([r], ALLOC, {**new(2), "start_date": "z", "end_date": "w", "advanced": False}, NOW)
        assert p.action == "skip"

    def test_target_groups_optional(self):
        r = req(status="completed", target_groups=[{"id": 1003}])
        assert plan_followup([r], ALLOC, new(3), NOW).action == "skip"  # not checked by default
        assert plan_followup([r], ALLOC, new(3), NOW, target_group_ids=[1001]).action == "post"
        assert plan_followup([r], ALLOC, new(3), NOW, target_group_ids=[1001, 1003]).action == "skip"
        r2 = req(status="completed", target_groups=[])
        assert plan_followup([r2], ALLOC, new(3), NOW, target_group_ids=[]).action == "skip"
        assert plan_followup([r2], ALLOC, new(3), NOW, target_group_ids=[1001]).action == "post"

    def test_existing_without_priority(self):
        r = req(status="submitted")
        del r["payload"]["priority"]
        p = plan_followup([r], ALLOC, new(3), NOW)
        assert p.action == "skip" and "unknown" in p.reason

    def test_new_priority_required(self):
        with pytest.raises(ValueError, match="priority"):
            plan_followup([], ALLOC, {"observation_type": "IFU"}, NOW)

    def test_urgency_alias(self):
        r = req(status="submitted")
        r["payload"] = {"observation_type": "IFU", "urgency": 1}
        p = plan_followup([r], ALLOC, {"observation_type": "IFU", "urgency": 2}, NOW)
        assert p.action == "update" and p.update_payload["urgency"] == 2

    def test_garbage_entries_tolerated(self):
        rs = [None, "x", {"allocation_id": None, "status": "submitted"}, {"allocation_id": ALLOC, "status": "completed"}]
        assert plan_followup(rs, ALLOC, new(3), NOW).action == "post"  # type: ignore[arg-type]

    def test_input_not_mutated(self):
        r = req(status="submitted", priority=2)
        snapshot = {**r, "payload": dict(r["payload"])}
        plan_followup([r], ALLOC, new(4), NOW)
        assert r == snapshot

    def test_with_sedm_payload_roundtrip(self):
        # an existing request made by the bot itself yesterday (dates differ) is recognised
        p_old = sedm_payload({"observation_type": "IFU", "priority": 3}, 7, NOW - timedelta(days=1))
        r = {"id": 9, "obj_id": "ZTF1", "allocation_id": ALLOC, "status": "submitted", "payload": p_old,
             "modified": "2023-10-04T10:00:00"}
        p_new = sedm_payload({"observation_type": "IFU", "priority": 3}, 7, NOW)
        assert plan_followup([r], ALLOC, p_new, NOW).action == "skip"
        p_new5 = sedm_payload({"observation_type": "IFU", "priority": 5}, 7, NOW)
        plan = plan_followup([r], ALLOC, p_new5, NOW)
        assert plan.action == "update" and plan.update_payload["start_date"] == p_old["start_date"]
