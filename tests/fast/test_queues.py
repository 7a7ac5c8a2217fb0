"""Is a queue moving, and why do syncs fail: each queue's oldest event, failures by reason and the newest
failure, in collect's document and in status, for bodies in any order and for hostile ones."""
import json

import pytest

from helpers import SECRET, Run, run_cli

ERRORS = "2.4/relations/AllContent/syncrequests/errorresponses"
BLOB_ERRORS = "2.4/relations/AllContent/syncrequests/bloberrorresponses"
SYNC_REQUESTS = "2.4/relations/AllContent/syncevents/syncrequests"


def document(ran: Run) -> dict:
    assert ran.code == 0 and ran.stderr == "", ran
    return json.loads(ran.stdout)


def connection(doc: dict, name: str = "AllContent") -> dict:
    return next(c for c in doc["connections"] if c["name"] == name)


def serve(sim, path: str, body) -> None:
    """The simulator answers path with body (JSON, or bytes as they are)."""
    sim.simulator.update(faults=[{"path": path, "body": body}])


def failure(event_id, issue, reason, message, reason_field="errorReason", message_field="message") -> dict:
    element = {"relationKey": "AllContent"}
    if event_id is not None:
        element["syncEventId"] = event_id
    if issue is not None:
        element["sourceIssueKey"] = {"id": 1, "urn": issue}
    if message is not None:
        element[message_field] = message
    if reason is not None:
        element[reason_field] = reason
    return element


def test_the_oldest_event_is_the_smallest_id_whatever_the_order(cli, sim):
    serve(sim, SYNC_REQUESTS, [{"syncEventId": i, "replica": {"issueKey": {"urn": f"AC-{i}"}}} for i in (57, 12, 90, 13)])
    c = connection(document(cli("collect")))
    assert (c["sync_requests"], c["sync_requests_oldest"]) == (4, 12)


def test_the_simulator_lists_its_queues_out_of_order_and_the_oldest_is_found(cli, sim):
    sim.simulator.update(connections=[{"name": "AllContent", "queues": {"sync-requests": 7, "blob-requests": 3},
                                       "heads": {"sync-requests": 4810}}])
    c = connection(document(cli("collect")))
    assert (c["sync_requests"], c["sync_requests_oldest"]) == (7, 4810)
    assert (c["blob_requests"], c["blob_requests_oldest"]) == (3, 1000)  # the simulator's default head


def test_an_empty_queue_has_no_oldest_event_and_no_failure(cli, sim):
    sim.simulator.update(connections=[{"name": "AllContent", "queues": {"sync-requests": 0}}])
    c = connection(document(cli("collect")))
    assert c["sync_requests"] == 0 and "sync_requests_oldest" not in c
    assert c["error_reasons"] == {} and c["blob_error_reasons"] == {}
    assert "last_error" not in c and "last_blob_error" not in c and "failures" not in c


def test_an_unreadable_queue_has_no_oldest_its_reason_stays_under_failures(cli, sim):
    sim.simulator.update(faults=[{"path": ERRORS, "status": 500}])
    c = connection(document(cli("collect")))
    for field in ("error_responses", "error_responses_oldest", "error_reasons", "last_error"):
        assert field not in c
    assert list(c["failures"]) == ["error_responses"] and "HTTP 500" in c["failures"]["error_responses"]
    assert c["blob_error_reasons"] == {"CHECKSUM_MISMATCH": 6}, "the other queue of failures is read as ever"


def test_failures_by_reason_and_the_newest_failure_from_seed_shaped_elements(cli, sim):
    serve(sim, ERRORS, [
        failure(49, "AC-113", "NO_ISSUE_TO_CONNECT_TO", "Could not connect `AC-113` to `AC-111`: issue by key "
                "`AC-111` already was connected to another issue using relation `AllContent`"),
        failure(61, "AC-120", "SCRIPT_ERROR", "Script error: No such property: foo"),
        failure(50, "AC-114", "NO_ISSUE_TO_CONNECT_TO", "Could not connect `AC-114`"),
        failure(None, "AC-9", None, "an element without an id or a reason"),
        failure(51, None, 42, None),  # a reason that is not a string counts as none
    ])
    c = connection(document(cli("collect")))
    assert c["error_responses"] == 5 and c["error_responses_oldest"] == 49
    assert c["error_reasons"] == {"NO_ISSUE_TO_CONNECT_TO": 2, "SCRIPT_ERROR": 1, "(none)": 2}
    assert c["last_error"] == {"id": 61, "issue": "AC-120", "reason": "SCRIPT_ERROR",
                               "message": "Script error: No such property: foo"}


def test_the_newest_attachment_failure_uses_the_blob_fields(cli, sim):
    serve(sim, BLOB_ERRORS, [failure(14, "PAR-37", "CHECKSUM_MISMATCH", "Checksums for blob id '10000' do not "
                                     "match", "blobErrorReason", "errorMessage"),
                             failure(12, "PAR-36", "BLOB_NOT_FOUND", "gone", "blobErrorReason", "errorMessage")])
    c = connection(document(cli("collect")))
    assert c["blob_error_reasons"] == {"CHECKSUM_MISMATCH": 1, "BLOB_NOT_FOUND": 1}
    assert c["last_blob_error"] == {"id": 14, "issue": "PAR-37", "reason": "CHECKSUM_MISMATCH",
                                    "message": "Checksums for blob id '10000' do not match"}
    assert c["blob_error_responses_oldest"] == 12


def test_failures_without_any_id_name_the_last_listed_as_newest(cli, sim):
    serve(sim, ERRORS, [failure(None, "AC-1", "A", "first"), failure(None, "AC-2", "B", "second")])
    c = connection(document(cli("collect")))
    assert "error_responses_oldest" not in c
    assert c["last_error"] == {"id": None, "issue": "AC-2", "reason": "B", "message": "second"}


def test_hostile_reasons_and_messages_are_bounded_one_line_and_masked(cli, sim):
    huge = "x" * 100_000
    serve(sim, ERRORS, [failure(1, "AC-1\n\x1b[31m", "R" * 500, "line one\nline two\r\n\ttabbed \x00\x07bell"),
                        failure(2, "AC-2", "LEAK", f"the shared secret is {SECRET}, said the node"),
                        failure(3, "AC-3", "HUGE", huge)]
                        + [failure(10 + i, f"AC-{i}", f"REASON_{i:03d}", "m") for i in range(200)])
    ran = cli("collect")
    c = connection(document(ran))
    reasons = c["error_reasons"]
    assert len(reasons) == 51 and reasons["(other)"] == 203 - 50, "50 distinct reasons, then (other)"
    assert all(len(r) <= 64 for r in reasons)
    assert ("R" * 61 + "...") in reasons
    last = c["last_error"]
    assert last["id"] == 209 and last["reason"] == "REASON_199"
    serve(sim, ERRORS, [failure(3, "AC-3", "HUGE", huge)])
    cut = connection(document(cli("collect")))["last_error"]
    assert len(cut["message"]) == 250 and cut["message"] == "x" * 247 + "..."
    serve(sim, ERRORS, [failure(2, "AC-2", "LEAK", f"the shared secret is {SECRET}, said the node")])
    leak = connection(document(cli("collect")))["last_error"]
    assert leak["message"] == "the shared secret is ***, said the node"
    serve(sim, ERRORS, [failure(1, "AC-1\n\x1b[31m", "R" * 500, "line one\nline two\r\n\ttabbed \x00\x07bell")])
    odd = connection(document(cli("collect")))["last_error"]
    assert odd["message"] == "line one line two tabbed bell"
    assert odd["issue"] == "AC-1 [31m" and odd["reason"] == "R" * 61 + "..."


def test_a_secret_cut_short_is_still_masked(cli, sim):
    serve(sim, ERRORS, [failure(1, "AC-1", "LEAK", "x" * 230 + SECRET + " and more")])
    assert connection(document(cli("collect")))["last_error"]["message"] == "x" * 230 + "*** and more"


def test_a_reason_that_echoes_a_secret_is_masked(cli, sim):
    serve(sim, ERRORS, [failure(1, "AC-1", SECRET, "m")])
    c = connection(document(cli("collect")))
    assert c["error_reasons"] == {"***": 1} and c["last_error"]["reason"] == "***"


def test_status_shows_each_queue_s_oldest_event_and_the_newest_failure(write_config, cli, sim):
    serve(sim, ERRORS, [failure(6100, "AC-120", "SCRIPT_ERROR", "Script error: No such property: foo")])
    ran = cli("status")
    assert ran.code == 0, ran
    assert max(len(line) for line in ran.stdout.splitlines()) <= 80
    assert ("AllContent: oldest to send 1000/1000, answers 1000/1000, failed 6100/1000; newest failure AC-120 "
            "SCRIPT_ERROR: Script error: No such property: foo") in " ".join(ran.stdout.split())


@pytest.mark.parametrize("given", ["ADO <> Jira Prod", "ADO%20%3C%3E%20Jira%20Prod"])
def test_status_of_one_connection_shows_it_in_full(write_config, sim, given):
    sim.simulator.update(connections=[
        {"name": "ADO <> Jira Prod", "id": 155, "status": "ACTIVE", "issue_prefix": "PROD",
         "queues": {"sync-requests": 12, "error-responses": 25}, "heads": {"sync-requests": 3117,
                                                                         "error-responses": 3000},
         "error_reasons": ["NO_ISSUE_TO_CONNECT_TO", "SCRIPT_ERROR"]},
        {"name": "AllContent", "id": 154, "status": "ACTIVE", "queues": {"sync-requests": 1}}])
    ran = run_cli("--config", write_config(), "status", "--connection", given)
    assert ran.code == 0 and ran.stderr == "", ran
    lines = ran.stdout.splitlines()
    assert "Connection ADO <> Jira Prod (ACTIVE, id 155)" in lines
    assert "  Syncs to send                       12        3117" in lines
    assert "  Sync answers to process              0           -" in lines
    assert "  Failed syncs                        25        3000" in lines
    assert "Failed syncs by reason: NO_ISSUE_TO_CONNECT_TO 13, SCRIPT_ERROR 12" in lines
    assert "Failed syncs, newest first (20 of 25, at most 20 shown):" in lines
    listed = [line for line in lines if line.startswith("  30")]
    assert [int(line.split()[0]) for line in listed] == list(range(3024, 3004, -1)), "newest first, 20 of them"
    assert listed[0].startswith("  3024 PROD-3024 ")
    assert "AllContent" not in ran.stdout.split("connections 2", 1)[1], "only the connection asked for"
    asked = [path for _, path, _ in sim.simulator.requests if "/2.4/relations/" in path]
    assert len(asked) == 6 and all("/relations/ADO%20%3C%3E%20Jira%20Prod/" in p for p in asked), asked


def test_status_of_a_connection_the_node_does_not_list_exits_5(cli):
    cli("status", "--connection", "Nope").assert_failed(5, "no connection named 'Nope'", "2 listed")


def test_status_of_a_removed_connection_shows_why_its_queues_are_unread(cli):
    ran = cli("status", "--connection", "Gone")
    assert ran.code == 0, ran
    assert "  Syncs to send                        ?           ?" in ran.stdout.splitlines()
    assert "Gone (every queue): connection 'Gone' not found" in " ".join(ran.stdout.split())


def test_a_200_mb_failure_queue_keeps_the_memory_bound(write_config, sim):
    count, message = 2000, 100_000
    sim.simulator.update(connections=[{"name": "Stuck", "queues": {"error-responses": count}}])
    big = "y" * message
    sim.simulator.update(faults=[{"path": "2.4/relations/Stuck/syncrequests/errorresponses",
                                  "body": [failure(i, f"S-{i}", "SCRIPT_ERROR", big) for i in range(count)]}])
    ran = run_cli("--config", write_config(timeout="60"), "collect", memory=True)
    c = connection(document(ran), "Stuck")
    assert c["error_responses"] == count and c["last_error"]["id"] == count - 1
    assert ran.peak_mb < 100, f"peak memory {ran.peak_mb:.0f} MB for a {count * message / 1e6:.0f} MB body"
