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


def add_http_host(tmp_path, existing=None, **keys):
    """add-host --template "Exalate by HTTP" against a Zabbix API on loopback: what it printed and the calls."""
    from hostile_server import HostileServer, jsonrpc_calls, zabbix_api
    config = config_file(tmp_path / "zabbix_exalate.conf", "https://jira.example.com", section="jira", **keys)
    answers = {"template__get": {"result": [{"templateid": "10600"}]},
               "hostgroup__get": {"result": [{"groupid": "22"}]}}
    if existing:
        answers["host__get"] = {"result": [existing]}
    with HostileServer() as frontend:
        frontend.route("POST", "*/api_jsonrpc.php", zabbix_api(**answers))
        ran = invoke("--config", config, "--node", "jira", "zabbix", "add-host", "exalate-jira", "--template",
                     "Exalate by HTTP", env={**NO_ZABBIX, "ZABBIX_URL": frontend.url, "ZABBIX_TOKEN": "t" * 64},
                     secrets=[PASSWORD, "shared-s3cret-of-jira"])
    return ran, {c["method"]: c["params"] for c in jsonrpc_calls(frontend)}


def test_add_host_for_the_http_template_sets_the_nodes_macros_and_no_agent_interface(tmp_path):
    ran, calls = add_http_host(tmp_path, jwt_secret="shared-s3cret-of-jira", user="monitor", password=PASSWORD,
                               jwt_exp_unit="milliseconds", timeout="5", verify="false")
    assert ran.code == 0, ran
    created = calls["host.create"]
    assert created["interfaces"] == [] and created["templates"] == [{"templateid": "10600"}]
    assert created["macros"] == [
        {"macro": "{$EXALATE.NODE}", "value": "jira"},
        {"macro": "{$EXALATE.URL}", "value": "https://jira.example.com"},
        {"macro": "{$EXALATE.JWT.SECRET}", "value": "shared-s3cret-of-jira", "type": 1},
        {"macro": "{$EXALATE.JWT.EXP.UNIT}", "value": "milliseconds"},
        {"macro": "{$EXALATE.USER}", "value": "monitor"},
        {"macro": "{$EXALATE.PASSWORD}", "value": PASSWORD, "type": 1}]
    assert ran.stdout.splitlines() == [
        "note: the HTTP template does not follow verify of [jira]: the Zabbix server (or proxy) reaches the node "
        "directly, with its own CA certificates",
        "host 'exalate-jira' created (hostid 10500), linked to 'Exalate by HTTP', {$EXALATE.NODE} = jira, and "
        "{$EXALATE.URL}, {$EXALATE.JWT.SECRET} (secret), {$EXALATE.JWT.EXP.UNIT}, {$EXALATE.USER}, "
        "{$EXALATE.PASSWORD} (secret)"]


def test_add_host_for_the_http_template_updates_its_macros_and_leaves_the_interfaces(tmp_path):
    existing = {"hostid": "10501", "interfaces": [], "parentTemplates": [], "groups": [],
                "macros": [{"hostmacroid": "7", "macro": "{$EXALATE.PASSWORD}", "value": "******"}]}
    ran, calls = add_http_host(tmp_path, existing, user="monitor", password=PASSWORD)
    assert ran.code == 0, ran
    assert "hostinterface.create" not in calls and "hostinterface.update" not in calls
    assert calls["usermacro.update"] == {"hostmacroid": "7", "value": PASSWORD, "type": 1}
    assert ran.stdout.endswith("{$EXALATE.URL}, {$EXALATE.USER}, {$EXALATE.PASSWORD} (secret)\n")
