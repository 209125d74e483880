"""The audit trail's pure parts: request ids derived from the resource, the record."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from aml_identity import audit

SUBJECT = audit.Subject("WorkloadIdentity", "ml-team", "trainer", str(uuid.uuid4()), 3)


def test_request_ids_begin_with_the_resource_uid_and_never_repeat() -> None:
    with audit.following(SUBJECT) as trail:
        ids = [audit.request_id() for _ in range(3)]
    again = audit.Trail(SUBJECT)
    ids.append(again.next_request_id())
    prefix = SUBJECT.uid.replace("-", "")[:8]
    assert all(i.startswith(prefix) for i in ids)
    assert len(set(ids)) == 4, "a later reconcile of the same generation gets new ids"
    assert all(uuid.UUID(i) for i in ids), "still GUIDs, as Graph requires"
    assert trail.writes == []
    assert audit.current() is None, "the trail ends with its reconcile"


def test_a_write_is_recorded_once_with_no_query(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aml_identity.audit")
    with audit.following(SUBJECT) as trail:
        audit.recorded(
            "POST",
            "https://graph.example/v1.0/applications/a1/addKey?x=secret-looking",
            200,
            "id-1",
            "svc-1",
        )
    [write] = trail.writes
    assert write.target == "/v1.0/applications/a1/addKey"
    [line] = [r for r in caplog.records if r.name == "aml_identity.audit"]
    record = json.loads(line.getMessage().removeprefix("audit "))
    assert record == {
        **{k: v for k, v in record.items() if k == "time"},
        "kind": "WorkloadIdentity",
        "namespace": "ml-team",
        "name": "trainer",
        "uid": SUBJECT.uid,
        "generation": 3,
        "method": "POST",
        "target": "/v1.0/applications/a1/addKey",
        "status": 200,
        "clientRequestId": "id-1",
        "serviceRequestId": "svc-1",
    }
    assert line.audit == record  # type: ignore[attr-defined]  # the JSON format's field
    assert "secret-looking" not in line.getMessage()
    assert write.event_message() == (
        "POST /v1.0/applications/a1/addKey -> 200 (client request id id-1, Azure request id svc-1)"
    )


def test_a_write_without_an_answer_or_a_resource() -> None:
    audit.recorded("DELETE", "https://arm.example/x", None, "id-2", None)  # no trail: logged
    write = audit.Write("DELETE", "/x", None, "id-2", None, 0.0)
    assert write.event_message() == "DELETE /x -> no answer (client request id id-2)"
    assert not write.succeeded
    assert not audit.Write("PUT", "/x", 403, "id-3", None, 0.0).succeeded
    assert audit.Write("PUT", "/x", 201, "id-4", None, 0.0).succeeded
    assert audit.record(None, write)["kind"] is None
