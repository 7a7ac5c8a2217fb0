"""Shared fixtures: the simulator on a loopback port, a configuration for it, and ways to run the CLI."""
import copy
import inspect
import os
import subprocess
import sys
from typing import List

import pytest
from click.testing import CliRunner

from zabbix_exalate.cli import main
from recording import RecordingServer as SimulatorServer, RecordingSimulator as Simulator

# The commands the tests run as processes (zabbix-exalate, as the agent would) are the ones installed
# beside the Python running the tests: tests/run's .venv, whatever PATH the caller has.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

SECRET = "s3cret-shared-jwt-key"
PASSWORD = "pa55-word-for-basic"
LOGIN_PASSWORD = "login-pa55phrase"

BASE_SCENARIO = {
    "credentials": {"jwt_secret": SECRET, "user": "monitor", "password": PASSWORD,
                    "login_password": LOGIN_PASSWORD, "token_ttl": 600},
    "errors": 7,
    "outgoing": 20,
    "incoming": 3,
    "connections": [
        {"name": "AllContent", "id": 154, "status": "ACTIVE", "remote": "https://remote.example",
         "queues": {"sync-requests": 1, "blob-requests": 2, "sync-responses": 3, "blob-responses": 4,
                    "error-responses": 5, "blob-error-responses": 6},
         "error_reasons": ["NO_ISSUE_TO_CONNECT_TO", "SCRIPT_ERROR"]},
        {"name": "Gone", "id": 9, "status": "ACTIVE", "removed": True},
    ],
}


class Run:
    """What a user sees from one command: exit status, stdout, stderr."""

    def __init__(self, code: int, stdout: str, stderr: str):
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def __repr__(self):
        return f"Run(code={self.code}, stdout={self.stdout!r}, stderr={self.stderr!r})"

    def assert_failed(self, code: int, *words: str) -> None:
        """The error contract: nothing on stdout, one line on stderr naming the cause, the class's status."""
        assert self.code == code, self
        assert self.stdout == "", self
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self
        for word in words:
            assert word in lines[0], self


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in (SECRET, PASSWORD, LOGIN_PASSWORD):
            assert secret not in text


def cli_runner() -> CliRunner:
    """click's in-process runner with stderr kept apart from stdout, as the agent sees them, on every click
    setup.cfg allows: before 8.2 the runner mixes stderr into stdout unless told not to (mix_stderr=False),
    and 8.2 removed that argument along with the mixing."""
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


@pytest.fixture
def scenario():
    return copy.deepcopy(BASE_SCENARIO)


@pytest.fixture
def sim(scenario):
    with SimulatorServer(Simulator(scenario)) as server:
        yield server


@pytest.fixture
def write_config(tmp_path, sim):
    """Write a configuration for the simulator: write_config(key=value, ...) -> path (mode 0600)."""
    cache = tmp_path / "token-cache"
    cache.mkdir(mode=0o700)

    def write(section: str = "default", mode: int = 0o600, drop=(), **keys) -> str:
        values = {"url": sim.url, "jwt_secret": SECRET, "user": "monitor", "password": PASSWORD,
                  "token_cache": str(cache), **keys}
        lines = [f"[{section}]"] + [f"{k} = {v}" for k, v in values.items() if k not in drop and v is not None]
        path = tmp_path / "zabbix_exalate.conf"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(mode)
        return str(path)

    return write


@pytest.fixture
def config(write_config):
    return write_config()


@pytest.fixture
def cli(config):
    """Run the CLI in-process through click's runner: cli("errors") -> Run."""
    def run(*args: str, config_path: str = config) -> Run:
        result = cli_runner().invoke(main, ["--config", config_path, *args], catch_exceptions=False)
        ran = Run(result.exit_code, result.stdout, result.stderr)
        assert_no_secret(ran.stdout, ran.stderr)
        return ran
    return run


def console(*args: str, env=None, timeout: float = 60) -> Run:
    """Run the installed console script as a separate process, as the Zabbix agent does."""
    proc = subprocess.run(["zabbix-exalate", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    ran = Run(proc.returncode, proc.stdout, proc.stderr)
    assert_no_secret(ran.stdout, ran.stderr)
    return ran


def require_binary(name: str) -> None:
    """Skip where a needed program is missing, except in CI, where that is a failure."""
    import shutil
    if not shutil.which(name):
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed: .ci/run must install it")
        pytest.skip(f"{name} is not installed")


def python_command() -> List[str]:
    return [sys.executable, "-m", "zabbix_exalate"]
