"""Issue 15, class 8: masking never corrupts data.

A configured secret that is also part of a figure, a status or a name (password 1234 and 1234 events waiting;
password ACTIVE) leaves the figures, names and states true and every document valid JSON; a long secret the
node echoes (in a name, a status, a URL, a reason) is masked wherever it shows; failure lines and --debug lines
are masked as before.

Everything runs against the simulator on loopback; the secret here is the monitor API's password (it is sent
only to the errors endpoint), so the simulator's other credentials stay as conftest configures them.
"""
import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import invoke, leaked, secret_forms
from trapper import Trapper
from zabbix_exalate.exalate.names import key_form

PROPERTY_SETTINGS = dict(deadline=None, derandomize=True, database=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MONITOR_USER = "mon"
NAME_CHARS = string.ascii_letters + string.digits + "-_<> "
STATUSES = ("ACTIVE", "DEACTIVATED", "ERROR", "SUSPENDED")


def with_secret(sim, write_config, secret: str) -> str:
    """A configuration whose monitor password (a secret the masker knows) is secret, and a node that takes it."""
    sim.simulator.update(credentials={**sim.simulator.scenario["credentials"], "monitor_user": MONITOR_USER,
                                      "monitor_password": secret})
    return write_config(monitor_user=MONITOR_USER, monitor_password=secret)


def run(path: str, *args: str):
    ran = invoke("--config", path, *args)
    assert "Traceback" not in ran.stderr and ran.code != 1, ran
    return ran


def document(ran) -> dict:
    assert ran.code == 0, ran
    return json.loads(ran.stdout)  # never invalid JSON


# -- class 8: figures, names and states that hold a short secret stay true ---------------------------

@st.composite
def short_secret_node(draw):
    """A node whose figures, connection name and status are drawn, and a secret of 3 to 7 characters cut from
    one of them: the number, the name or the status."""
    number = draw(st.integers(100, 10 ** 12))
    name = draw(st.text(NAME_CHARS, min_size=3, max_size=20).filter(lambda n: n.strip() == n))
    status = draw(st.sampled_from(STATUSES))
    source = draw(st.sampled_from((str(number), name, status)))
    length = draw(st.integers(3, min(7, len(source))))
    start = draw(st.integers(0, len(source) - length))
    secret = source[start:start + length]
    return number, name, status, secret


@settings(max_examples=25, **PROPERTY_SETTINGS)
@given(short_secret_node())
def test_a_short_secret_never_changes_a_figure_a_name_or_a_status(sim, write_config, node):
    number, name, status, secret = node
    if secret != secret.strip() or name.startswith("Gone-"):
        return
    gone = f"Gone-{secret}"  # removed on the node: its failures are reasons that name it
    sim.simulator.update(errors=number, outgoing=number, connections=[
        {"name": name, "id": number, "status": status, "remote": "https://remote.example"},
        {"name": gone, "id": 9, "status": status, "removed": True}])
    path = with_secret(sim, write_config, secret)

    doc = document(run(path, "collect"))
    assert (doc["ping"], doc["errors"], doc["outgoing"]) == (1, number, number)
    first, second = doc["connections"]
    assert (first["name"], first["key"], first["id"], first["status"]) == (name, key_form(name), number, status)
    assert (second["name"], second["status"]) == (gone, status)
    assert second["failures"] and all(secret not in reason for reason in second["failures"].values())

    assert run(path, "outgoing").stdout == f"{number}\n"
    assert run(path, "errors").stdout == f"{number}\n"
    assert run(path, "ping").stdout == "1\n"
    row = json.loads(run(path, "discover").stdout)[0]
    assert (row["{#CONNECTION}"], row["{#CONNECTION.KEY}"], row["{#CONNECTION.ID}"], row["{#CONNECTION.STATUS}"]) \
        == (name, key_form(name), str(number), status)
    shown = run(path, "status").stdout
    assert f"outgoing {number}" in shown and f"  {name}  " in shown and f"  {status}  " in shown


# -- class 8: a long secret the node echoes is masked everywhere, and the JSON stays valid ----------------

SECRET_CHARS = string.ascii_letters + string.digits + "\"\\:,{}[]~'<>/@"
long_secrets = st.text(SECRET_CHARS, min_size=8, max_size=16).filter(lambda s: not s.isdigit())


@settings(max_examples=15, **PROPERTY_SETTINGS)
@given(secret=long_secrets, number=st.integers(0, 10 ** 9))
def test_a_long_secret_the_node_echoes_is_masked_and_the_json_stays_valid(sim, write_config, secret, number):
    sim.simulator.update(outgoing=number, connections=[
        {"name": f"Q {secret} é", "id": 1, "status": secret, "remote": f"https://u:{secret}@remote.example/"},
        {"name": secret, "id": 2, "status": "ACTIVE"},
        {"name": f"Gone{secret}", "id": 3, "status": "ACTIVE", "removed": True}])
    path = with_secret(sim, write_config, secret)
    forms = secret_forms(secret) + [key_form(secret)]

    ran = run(path, "collect")
    doc = document(ran)
    assert not leaked(ran.stdout, forms)
    assert doc["outgoing"] == number and [c["id"] for c in doc["connections"]] == [1, 2, 3]
    assert doc["connections"][0]["name"] == "Q *** é" and doc["connections"][0]["status"] == "***"
    assert set(doc["connections"][2]) == {"name", "key", "id", "status", "failures"}
    for args in (["discover"], ["status"], ["status", "--connection", f"Q {secret} é"], ["status", "--connection",
                                                                                          secret]):
        ran = run(path, *args)
        assert ran.code == 0 and not leaked(ran.stdout + ran.stderr, forms), (args, ran)
    json.loads(run(path, "discover").stdout)


def test_send_pushes_true_figures_as_valid_json(sim, write_config):
    sim.simulator.update(outgoing=1234, connections=[{"name": "Q1234", "id": 1234, "status": "ACTIVE"}])
    path = with_secret(sim, write_config, "1234")
    with Trapper() as trapper:
        ran = run(path, "send", "--server", f"127.0.0.1:{trapper.port}", "--host", "h")
    assert ran.code == 0, ran
    pushed = json.loads(trapper.received[0]["value"])
    assert pushed["outgoing"] == 1234 and pushed["connections"][0]["name"] == "Q1234"
    assert "ping 1, 1 connections, 0 values unread" in ran.stdout


@pytest.mark.parametrize("secret", ["1234", "ACTIVE", "Gone-s3cr"])
def test_failure_and_debug_lines_are_still_masked(sim, write_config, secret):
    sim.simulator.update(outgoing=1234, connections=[{"name": f"Gone{secret}", "status": "ACTIVE", "removed": True}])
    path = with_secret(sim, write_config, secret)
    ran = run(path, "--debug", "sync-requests", f"Gone{secret}")
    assert ran.code == 5 and ran.stdout == "" and "not found" in ran.stderr, ran
    assert ran.stderr.count("debug:") >= 1 and secret not in ran.stderr, ran
    ran = run(path, "--debug", "outgoing")
    assert ran.stdout == "1234\n" and secret not in ran.stderr, ran
