"""Each way a check can fail: one line on stderr naming the cause, nothing on stdout, its exit status."""
import pytest

from helpers import SLACK, assert_contract, config_file, free_ports, run_cli


def test_missing_configuration_file(cli, tmp_path):
    cli("errors", config_path=str(tmp_path / "nope.conf")).assert_failed(3, "does not exist", "--config")


def test_configuration_that_is_not_ini(cli, tmp_path):
    bad = config_file(tmp_path / "bad.conf", text="url = http://x\n[default\n")
    cli("errors", config_path=bad).assert_failed(3, "not valid INI")


def test_misspelt_key_is_named(write_config, cli):
    cli("errors", config_path=write_config(jwt_secert="x")).assert_failed(3, "unknown key 'jwt_secert'")


def test_missing_url(write_config, cli):
    cli("errors", config_path=write_config(drop=("url",))).assert_failed(3, "has no url")


def test_url_with_credentials_is_refused(write_config, cli):
    ran = cli("errors", config_path=write_config(url="http://admin:hunter22@127.0.0.1:1"))
    ran.assert_failed(3, "holds credentials")
    assert "hunter22" not in ran.stderr


def test_no_credentials(write_config, cli):
    path = write_config(drop=("jwt_secret", "user", "password"))
    cli("errors", config_path=path).assert_failed(3, "no credentials")


def test_bad_timeout_value(write_config, cli):
    cli("errors", config_path=write_config(timeout="soon")).assert_failed(3, "timeout", "positive number")


def test_wrong_password_names_the_credential_not_the_secret(write_config, cli):
    ran = cli("outgoing", config_path=write_config(password="not-the-password"))
    ran.assert_failed(4, "HTTP 401", "basic auth as 'monitor'")
    assert "not-the-password" not in ran.stderr


def test_wrong_jwt_secret(write_config, cli):
    ran = cli("sync-requests", "AllContent", config_path=write_config(jwt_secret="another-secret-entirely"))
    ran.assert_failed(4, "HTTP 401", "jwt_secret")
    assert "another-secret-entirely" not in ran.stderr


def test_connection_removed_on_the_other_side(cli):
    cli("sync-requests", "Gone").assert_failed(5, "'Gone' not found", "removed")


def test_unknown_connection(cli):
    cli("error-responses", "No such one").assert_failed(5, "'No such one' not found")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_error_gives_the_status(cli, sim, status):
    sim.simulator.update(faults=[{"path": "4.0/cmonitor", "status": status}])
    cli("errors").assert_failed(6, f"HTTP {status}")


# In this process the deadline counts from the invocation, where a process's counts from its start: the bound is the
# same promise, the timeout + SLACK.

def test_slow_answer_times_out_within_the_timeout(cli, sim):
    sim.simulator.update(faults=[{"path": "*", "delay": 5}])
    assert_contract(cli("--timeout", "0.5", "outgoing"), 7, "timeout of 0.5 s", timeout=0.5)


def test_body_trickling_in_times_out_within_the_timeout(cli, sim):
    sim.simulator.update(connections=[{"name": "Big", "queues": {"sync-requests": 50}, "payload_bytes": 20000}],
                         faults=[{"path": "2.4/*", "trickle": 0.05}])
    assert_contract(cli("--timeout", "1", "sync-requests", "Big"), 7, "timeout of 1 s", timeout=1)


def test_timeout_counts_from_the_configuration(write_config, cli, sim):
    sim.simulator.update(faults=[{"path": "*", "delay": 3}])
    assert_contract(cli("incoming", config_path=write_config(timeout="0.4")), 7, "0.4 s", timeout=0.4)


def test_nothing_listening(write_config, cli):
    (port,) = free_ports()
    ran = cli("errors", config_path=write_config(url=f"http://127.0.0.1:{port}"))
    ran.assert_failed(8, "connection refused")


def test_host_that_does_not_resolve(write_config, cli):
    cli("errors", config_path=write_config(url="http://exalate.invalid")).assert_failed(8, "does not resolve")


def test_tls_to_a_plain_http_port(write_config, cli, sim):
    url = sim.url.replace("http://", "https://")
    cli("errors", config_path=write_config(url=url)).assert_failed(8, "TLS")


@pytest.mark.parametrize("fault, command, words", [
    ({"path": "4.0/syncevents", "html": True}, "outgoing", ["HTML page"]),
    ({"path": "2.4/*", "html": True}, "sync-requests", ["HTML page"]),
    ({"path": "2.4/*", "truncate": True}, "sync-requests", ["cut off"]),
    ({"path": "4.0/cmonitor", "truncate": True}, "errors", ["cut off"]),
    ({"path": "2.4/*", "body": "[{\"a\": 1} {\"b\": 2}]"}, "sync-requests", ["not valid JSON"]),
    ({"path": "2.4/*", "body": "{\"results\": []}"}, "sync-requests", ["a JSON object", "array"]),
    ({"path": "2.4/*", "body": "[1, 2"}, "sync-requests", ["not valid JSON"]),
    ({"path": "2.4/*", "body": ""}, "sync-requests", ["not valid JSON"]),
    ({"path": "2.4/*", "body": "  <html>login</html>"}, "sync-requests", ["HTML page, not JSON"]),
    ({"path": "4.0/cmonitor", "body": "{\"numErrors\": \"many\"}"}, "errors", ["'numErrors'", "not a count"]),
    ({"path": "4.0/cmonitor", "body": "{\"numErrors\": -1}"}, "errors", ["not a count"]),
    ({"path": "4.0/cmonitor", "body": "{\"numErrors\": 2.5}"}, "errors", ["not a count"]),
    ({"path": "4.0/cmonitor", "body": "{}"}, "errors", ["no 'numErrors'"]),
    ({"path": "4.0/cmonitor", "body": "[]"}, "errors", ["JSON array", "object"]),
    # A number followed by garbage proves nothing: the whole body must be JSON.
    ({"path": "4.0/syncevents", "body": "{\"limit\":0,\"total\":20 \"results\":[]}"}, "outgoing", ["not valid JSON"]),
    ({"path": "4.0/cmonitor", "body": "{\"numErrors\":0 \"extra\":1"}, "errors", ["not valid JSON"]),
    ({"path": "4.0/syncevents", "redirect": "/login.jsp?os_destination=x"}, "outgoing", ["login page"]),
    ({"path": "4.0/syncevents", "redirect": "https://elsewhere.example/"}, "outgoing", ["redirected", "elsewhere"]),
])
def test_answer_that_is_not_what_the_api_promises(cli, sim, fault, command, words):
    sim.simulator.update(faults=[fault])
    args = [command] + (["AllContent"] if command == "sync-requests" else [])
    cli(*args).assert_failed(9, *words)


def test_a_failure_through_the_console_script_too(config, sim):
    sim.simulator.update(faults=[{"path": "4.0/cmonitor", "status": 500}])
    run_cli("--config", config, "errors").assert_failed(6, "HTTP 500")


def test_usage_error_is_exit_2(cli):
    ran = cli("sync-requests")
    assert ran.code == 2 and ran.stdout == ""


def test_help_lists_the_exit_statuses(cli):
    out = cli("--help").stdout
    for line in ("3  configuration", "4  authentication refused", "5  connection not found", "6  server error",
                 "7  timeout", "8  unreachable", "9  unexpected response"):
        assert line in out


@pytest.mark.parametrize("command", [["outgoing"], ["collect"]], ids=["check", "collect"])
def test_the_budget_counts_from_the_process_start(write_config, sim, tmp_path, command):
    # The agent's Timeout counts from when it starts the command: a loaded host that takes a second to
    # start Python must not push the check past it. sitecustomize makes this Python that slow.
    slow = tmp_path / "slow-start"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text("import time\ntime.sleep(1.0)\n")
    sim.simulator.update(faults=[{"path": "*", "delay": 5}])
    ran = run_cli("--config", write_config(timeout="2"), *command, env={"PYTHONPATH": str(slow)})
    assert ran.elapsed <= 2 + SLACK, f"{ran.elapsed:.2f} s for a timeout of 2 s"
    if command == ["collect"]:
        assert ran.code == 0 and "timeout of 2 s" in ran.stdout
    else:
        ran.assert_failed(7, "timeout of 2 s")
