"""The simulator as users run it (simulate, demo), and its scenario files."""
import json
import os
import signal
import subprocess
import time

import pytest

from zabbix_exalate.simulator import Simulator

from conftest import console


def test_demo_shows_every_check_and_the_failures(tmp_path):
    ran = console("demo", env={"HOME": str(tmp_path)})
    assert ran.code == 0 and ran.stderr == "", ran
    lines = ran.stdout.splitlines()
    row = next(line for line in lines if line.strip().startswith("ADO <> Jira Prod"))
    assert row.split()[-7:] == ["ACTIVE", "12", "4", "0", "0", "3", "1"]
    assert any(line.split()[:3] == ["errors", "Errors", "reported"] and line.split()[-1] == "2" for line in lines)
    assert "connection 'Zendesk support' not found" in ran.stdout
    for words in ("HTTP 503", "HTML page", "timeout of 1 s", "cut off"):
        assert words in ran.stdout


def test_simulate_serves_a_scenario_file_and_rereads_it(tmp_path):
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"credentials": {"jwt_secret": "x" * 32}, "outgoing": 5}))
    config = tmp_path / "sim.conf"
    proc = subprocess.Popen(["zabbix-exalate", "simulate", "--port", "0", "--scenario", str(scenario),
                             "--write-config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        banner = proc.stderr.readline() + proc.stderr.readline()
        assert "listening on http://127.0.0.1:" in banner, banner
        assert os.stat(config).st_mode & 0o777 == 0o600
        assert console("--config", str(config), "outgoing").stdout == "5\n"
        time.sleep(0.01)  # a new modification time, even on coarse file systems
        scenario.write_text(json.dumps({"credentials": {"jwt_secret": "x" * 32}, "outgoing": 9}))
        os.utime(scenario, ns=(time.time_ns(), time.time_ns() + 10 ** 9))
        assert console("--config", str(config), "outgoing").stdout == "9\n"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_simulate_refuses_a_bad_scenario(tmp_path):
    scenario = tmp_path / "bad.json"
    scenario.write_text(json.dumps({"connections": [{"name": "A", "queues": {"nonsense": 1}}]}))
    ran = console("simulate", "--port", "0", "--scenario", str(scenario))
    ran.assert_failed(3, "unknown queue 'nonsense'")


@pytest.mark.parametrize("scenario, words", [
    ([], "a JSON object"),
    ({"errors": -1}, "errors must be a whole number"),
    ({"connections": [{"id": 1}]}, "needs a name"),
    ({"faults": [{"delay": 1}]}, "needs a path"),
])
def test_scenario_validation(scenario, words):
    with pytest.raises(ValueError, match=words):
        Simulator(scenario)
