"""The zabbix commands when they cannot do their job: one line, the class's exit status, no secret."""
import pytest

from helpers import Run, config_file, free_ports, invoke

NO_ZABBIX = {"ZABBIX_URL": "", "ZABBIX_TOKEN": "", "ZABBIX_USER": "", "ZABBIX_PASSWORD": ""}
PASSWORD = "zbx-pa55-not-shown"


def zabbix(*args: str, config: str = "/nonexistent", **env: str) -> Run:
    return invoke("--config", config, "zabbix", *args, env={**NO_ZABBIX, **env}, secrets=[PASSWORD])


@pytest.mark.parametrize("args", [("import-template",), ("add-host", "exalate-jira")])
def test_without_a_zabbix_url_it_says_how_to_give_one(args):
    zabbix(*args).assert_failed(3, "no Zabbix URL", "ZABBIX_URL")


def test_without_credentials_it_says_which_are_accepted():
    zabbix("import-template", ZABBIX_URL="http://127.0.0.1:9").assert_failed(
        3, "no Zabbix credentials", "ZABBIX_TOKEN", "ZABBIX_USER")


def test_an_unreachable_frontend_is_named():
    (unused_port,) = free_ports()
    zabbix("import-template", ZABBIX_URL=f"http://127.0.0.1:{unused_port}", ZABBIX_USER="Admin",
           ZABBIX_PASSWORD=PASSWORD).assert_failed(8, "cannot reach the Zabbix API", str(unused_port))


def test_a_url_that_is_not_the_frontend_is_named(sim):
    # The simulator answers 404 to /api_jsonrpc.php, as any web server that is not Zabbix would.
    zabbix("add-host", "exalate-jira", ZABBIX_URL=sim.url, ZABBIX_TOKEN=PASSWORD).assert_failed(
        10, "HTTP 404", "is this the frontend's URL?")


def test_the_zabbix_section_of_the_config_file_is_read_and_checked(tmp_path):
    config = config_file(tmp_path / "zabbix_exalate.conf", "http://127.0.0.1:9", section="zabbix", user="Admin",
                         pasword="typo")
    zabbix("import-template", config=config).assert_failed(3, "unknown key 'pasword'", "[zabbix]")


def test_add_host_names_the_templates_it_can_link():
    ran = zabbix("add-host", "exalate-jira", "--template", "Exalate by SNMP", ZABBIX_URL="http://127.0.0.1:9",
                 ZABBIX_TOKEN="t" * 64)
    assert ran.code == 2 and "Exalate by Zabbix trapper" in ran.stderr, ran
