"""Every check prints the number its endpoint holds; discovery lists the connections."""
import json

import pytest

from helpers import BASE_SCENARIO, ENDPOINTS, python_command, run_cli, run_process
from zabbix_exalate.metrics import CONNECTION_METRICS, METRICS, NODE_METRICS


@pytest.mark.parametrize("metric", NODE_METRICS, ids=lambda m: m.command)
def test_node_check_prints_the_number(cli, metric):
    ran = cli(metric.command)
    assert (ran.code, ran.stdout, ran.stderr) == (0, f"{BASE_SCENARIO[metric.command]}\n", "")


@pytest.mark.parametrize("metric", CONNECTION_METRICS, ids=lambda m: m.command)
def test_connection_check_counts_the_queue(cli, metric):
    ran = cli(metric.command, "AllContent")
    expected = BASE_SCENARIO["connections"][0]["queues"][metric.command]
    assert (ran.code, ran.stdout, ran.stderr) == (0, f"{expected}\n", "")


def test_checks_each_hit_exactly_one_endpoint(cli, sim):
    assert set(ENDPOINTS) == {m.command for m in METRICS}
    for command, path in ENDPOINTS.items():
        before = len(sim.simulator.requests)
        args = [command] + (["AllContent"] if "{}" in path else [])
        assert cli(*args).code == 0
        requests = list(sim.simulator.requests)[before:]
        assert len(requests) == 1, requests
        assert requests[0][1] == "/rest/issuehub/" + path.format("AllContent")


@pytest.mark.parametrize("command, reason, expected", [
    ("error-responses", "NO_ISSUE_TO_CONNECT_TO", 3),
    ("error-responses", "SCRIPT_ERROR", 2),
    ("error-responses", "NO_SUCH_REASON", 0),
    ("blob-error-responses", "CHECKSUM_MISMATCH", 6),
])
def test_reason_counts_only_matching_failures(cli, command, reason, expected):
    assert cli(command, "AllContent", "--reason", reason).stdout == f"{expected}\n"


def test_empty_queue_is_zero(cli, sim):
    sim.simulator.update(connections=[{"name": "Idle", "queues": {}}])
    assert cli("sync-requests", "Idle").stdout == "0\n"


def test_discover_prints_lld_rows(cli):
    ran = cli("discover")
    assert ran.code == 0 and ran.stderr == ""
    assert json.loads(ran.stdout) == [
        {"{#CONNECTION}": "AllContent", "{#CONNECTION.KEY}": "AllContent", "{#CONNECTION.ID}": "154",
         "{#CONNECTION.STATUS}": "ACTIVE", "{#CONNECTION.REMOTE}": "https://remote.example"},
        {"{#CONNECTION}": "Gone", "{#CONNECTION.KEY}": "Gone", "{#CONNECTION.ID}": "9",
         "{#CONNECTION.STATUS}": "ACTIVE", "{#CONNECTION.REMOTE}": ""},
    ]


def test_discover_falls_back_to_configured_connections(write_config, sim, cli):
    sim.simulator.update(list_connections=False)
    path = write_config(connections="\n  AllContent\n  Sales, EU <> Jira")
    rows = json.loads(cli("discover", config_path=path).stdout)
    assert [(r["{#CONNECTION}"], r["{#CONNECTION.KEY}"], r["{#CONNECTION.STATUS}"]) for r in rows] == [
        ("AllContent", "AllContent", "CONFIGURED"), ("Sales, EU <> Jira", "Sales%2C%20EU%20%3C%3E%20Jira", "CONFIGURED")]


def test_discover_without_listing_or_configured_list_says_what_to_do(cli, sim):
    sim.simulator.update(list_connections=False)
    cli("discover").assert_failed(9, "does not list its connections", "connections =")


PAGED = '{"total": 3, "results": [{"id": 1, "name": "AllContent", "status": "ACTIVE"}]}'


def test_a_paged_connection_list_is_refused_rather_than_half_discovered(cli, sim):
    # Half a list would let Zabbix delete the other connections' items once their lifetime passes.
    sim.simulator.update(faults=[{"path": "4.0/connections", "body": PAGED}])
    cli("discover").assert_failed(9, "lists 1 of the node's 3 connections", "connections =")


def test_a_paged_connection_list_gives_way_to_the_configured_one(write_config, sim, cli):
    sim.simulator.update(faults=[{"path": "4.0/connections", "body": PAGED}])
    path = write_config(connections="\n  AllContent\n  Sales\n  Support")
    rows = json.loads(cli("discover", config_path=path).stdout)
    assert [r["{#CONNECTION}"] for r in rows] == ["AllContent", "Sales", "Support"]


def test_nodes_are_chosen_by_section(write_config, cli):
    path = write_config(section="prod")
    assert cli("--node", "prod", "outgoing", config_path=path).stdout == "20\n"
    cli("outgoing", config_path=path).assert_failed(3, "no section [default]", "[prod]")


def test_config_from_environment_variable(config, sim):
    ran = run_cli("incoming", env={"ZABBIX_EXALATE_CONFIG": config})
    assert (ran.code, ran.stdout, ran.stderr) == (0, "3\n", "")


def test_console_script_and_python_module_agree(config):
    ran = run_cli("--config", config, "sync-requests", "AllContent")
    module = run_process(python_command() + ["--config", config, "sync-requests", "AllContent"], timeout=30)
    assert ran.stdout == module.stdout == "1\n"
    assert ran.stderr == module.stderr == ""


def test_ping_is_one_for_a_healthy_node(cli):
    assert (cli("ping").stdout, cli("ping").code) == ("1\n", 0)


def test_ping_is_zero_with_the_reason_on_stderr_when_the_node_is_down(cli, sim):
    sim.stop()
    ran = cli("ping")
    assert (ran.code, ran.stdout) == (0, "0\n")
    assert "cannot connect" in ran.stderr and "refused" in ran.stderr


def test_ping_is_zero_when_credentials_are_refused(write_config, cli):
    ran = cli("ping", config_path=write_config(password="wrong-password"))
    assert (ran.code, ran.stdout) == (0, "0\n")
    assert "HTTP 401" in ran.stderr


def test_ping_can_use_another_check(write_config, cli, sim):
    path = write_config(ping_check="errors")
    before = len(sim.simulator.requests)
    assert cli("ping", config_path=path).stdout == "1\n"
    assert [r[1] for r in list(sim.simulator.requests)[before:]] == ["/rest/issuehub/4.0/cmonitor"]


def test_customer_monitor_on_its_own_url_with_its_own_credentials(write_config, sim, cli):
    sim.simulator.update(credentials={**BASE_SCENARIO["credentials"], "monitor_user": "cm",
                                      "monitor_password": "cm-pa55-word"})
    path = write_config(monitor_url=sim.url + "/rest/issuehub/4.0/cmonitor", monitor_user="cm",
                        monitor_password="cm-pa55-word", user=None, password=None)
    ran = cli("errors", config_path=path)
    assert ran.stdout == "7\n"
    assert "cm-pa55-word" not in ran.stderr
    assert list(sim.simulator.requests)[-1][2] == "basic"


@pytest.mark.parametrize("status", [401, 403])
def test_configured_connections_when_the_node_will_not_list_them(write_config, cli, sim, status):
    # docs/configuration.md's [cloud] example: credentials for the queues, not for the list.
    sim.simulator.update(faults=[{"path": "4.0/connections", "status": status}])
    rows = json.loads(cli("discover", config_path=write_config(connections="\n  AllContent")).stdout)
    assert [(r["{#CONNECTION}"], r["{#CONNECTION.STATUS}"]) for r in rows] == [("AllContent", "CONFIGURED")]


def test_a_refused_list_without_configured_connections_is_an_authentication_error(cli, sim):
    sim.simulator.update(faults=[{"path": "4.0/connections", "status": 403}])
    cli("discover").assert_failed(4, "HTTP 403")


def test_debug_shows_each_request_and_the_credential_never_a_secret(cli):
    ran = cli("--debug", "sync-requests", "AllContent")
    assert (ran.code, ran.stdout) == (0, "1\n")
    lines = ran.stderr.splitlines()
    assert lines[0].startswith("zabbix-exalate: debug: [default] of ") and "timeout 2.5 s" in lines[0]
    assert "GET http://127.0.0.1:" in lines[1] and "/AllContent/syncevents/syncrequests" in lines[1]
    assert "a JWT signed with jwt_secret" in lines[1] and "HTTP 200" in lines[1]
    assert cli("sync-requests", "AllContent").stderr == "", "nothing without --debug"
