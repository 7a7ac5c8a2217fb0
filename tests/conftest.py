"""Fixtures for every kind of test: the simulator on a loopback port, a configuration for it, the CLI against it.

The servers and helpers the tests share live in tests/support/, importable by their plain names (helpers,
hostile_server, zabbix_stack...) from tests of any folder."""
import copy
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "support"))

from helpers import BASE_SCENARIO, PASSWORD, SECRET, USER, Run, config_file, invoke  # noqa: E402
from recording import RecordingServer as SimulatorServer, RecordingSimulator as Simulator  # noqa: E402

# The commands the tests run as processes (zabbix-exalate, as the agent would) are the ones installed
# beside the Python running the tests: tests/run's .venv, whatever PATH the caller has.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture
def scenario():
    return copy.deepcopy(BASE_SCENARIO)


@pytest.fixture
def sim(scenario):
    with SimulatorServer(Simulator(scenario)) as server:
        yield server


@pytest.fixture
def write_config(tmp_path, sim):
    """config_file for the simulator: write_config(key=value, ..., drop=(keys,)) -> path (mode 0600)."""
    cache = tmp_path / "token-cache"
    cache.mkdir(mode=0o700)

    def write(section: str = "default", mode: int = 0o600, drop=(), **keys) -> str:
        values = {"url": sim.url, "jwt_secret": SECRET, "user": USER, "password": PASSWORD,
                  "token_cache": str(cache), **keys}
        for key in drop:
            values[key] = None
        return config_file(tmp_path / "zabbix_exalate.conf", section=section, mode=mode, **values)

    return write


@pytest.fixture
def config(write_config):
    return write_config()


@pytest.fixture
def cli(config):
    """Run the CLI in-process through click's runner: cli("errors", config_path=...) -> Run."""
    def run(*args: str, config_path: str = config) -> Run:
        return invoke("--config", config_path, *args)
    return run
