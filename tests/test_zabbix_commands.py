"""The zabbix commands when they cannot do their job: one line, the class's exit status, no secret."""
import pytest

from conftest import Run, cli_runner
from zabbix_exalate.cli import main

NO_ZABBIX = {"ZABBIX_URL": "", "ZABBIX_TOKEN": "", "ZABBIX_USER": "", "ZABBIX_PASSWORD": ""}
PASSWORD = "zbx-pa55-not-shown"


def zabbix(*args: str, config: str = "/nonexistent", **env: str) -> Run:
    result = cli_runner().invoke(main, ["--config", config, "zabbix", *args], env={**NO_ZABBIX, **env},
                                catch_exceptions=False)
    ran = Run(result.exit_code, result.stdout, result.stderr)
    assert PASSWORD not in ran.stdout + ran.stderr
    return ran


@pytest.mark.parametrize("args", [("import-template",), ("add-host", "exalate-jira")])
def test_without_a_zabbix_url_it_says_how_to_give_one(args):
    zabbix(*args).assert_failed(3, "no Zabbix URL", "ZABBIX_URL")


def test_without_credentials_it_says_which_are_accepted():
    zabbix("import-template", ZABBIX_URL="http://127.0.0.1:9").assert_failed(
        3, "no Zabbix credentials", "ZABBIX_TOKEN", "ZABBIX_USER")


def test_an_unreachable_frontend_is_named(unused_port):
    zabbix("import-template", ZABBIX_URL=f"http://127.0.0.1:{unused_port}", ZABBIX_USER="Admin",
           ZABBIX_PASSWORD=PASSWORD).assert_failed(8, "cannot reach the Zabbix API", str(unused_port))


def test_a_url_that_is_not_the_frontend_is_named(sim):
    # The simulator answers 404 to /api_jsonrpc.php, as any web server that is not Zabbix would.
    zabbix("add-host", "exalate-jira", ZABBIX_URL=sim.url, ZABBIX_TOKEN=PASSWORD).assert_failed(
        10, "HTTP 404", "is this the frontend's URL?")


def test_the_zabbix_section_of_the_config_file_is_read_and_checked(tmp_path):
    config = tmp_path / "zabbix_exalate.conf"
    config.write_text("[zabbix]\nurl = http://127.0.0.1:9\nuser = Admin\npasword = typo\n")
    config.chmod(0o600)
    zabbix("import-template", config=str(config)).assert_failed(3, "unknown key 'pasword'", "[zabbix]")


@pytest.fixture
def unused_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_add_host_names_the_templates_it_can_link():
    ran = zabbix("add-host", "exalate-jira", "--template", "Exalate by SNMP", ZABBIX_URL="http://127.0.0.1:9",
                 ZABBIX_TOKEN="t" * 64)
    assert ran.code == 2 and "Exalate by Zabbix trapper" in ran.stderr, ran
