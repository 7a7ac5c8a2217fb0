"""Every request of a run carries what requests' Session.request gave it (issue 18 prepares and sends them for less):
what the environment says (proxy variables, NO_PROXY, ~/.netrc: looked up once per node address, not at each of
collect's hundreds of requests), the node's cookies sent back, the session's headers."""
import json

import pytest
import requests

from helpers import config_file, run_cli
from hostile_server import Answer, HostileServer


@pytest.fixture
def proxy():
    with HostileServer() as server:
        server.route("*", "*", Answer(503, b'{"message": "the corporate proxy is down"}'))
        yield server


def proxy_env(proxy: HostileServer, bypass: str) -> dict:
    return {"http_proxy": proxy.url, "HTTP_PROXY": proxy.url, "no_proxy": bypass, "NO_PROXY": bypass}


def test_every_read_of_collect_goes_through_the_proxy_the_environment_names(write_config, proxy):
    ran = run_cli("--config", write_config(), "collect", env=proxy_env(proxy, "other.example"))
    document = json.loads(ran.stdout)
    assert ran.code == 0 and document["ping"] == 0, ran
    # Had a read after the first gone direct, the simulator would have answered it with a value.
    failures = document["failures"]
    assert {"errors", "outgoing", "incoming", "connections"} <= failures.keys(), document
    assert all(f"the proxy 127.0.0.1:{proxy.port}" in failures[k] for k in ("errors", "outgoing", "connections")), \
        document
    assert len(proxy.seen()) == 4, proxy.seen()  # the three totals and the connection list


def test_no_proxy_naming_the_node_sends_collect_straight_to_it(write_config, proxy, scenario):
    ran = run_cli("--config", write_config(), "collect", env=proxy_env(proxy, "127.0.0.1"))
    document = json.loads(ran.stdout)
    assert ran.code == 0 and document["ping"] == 1 and "failures" not in document, ran
    assert len(document["connections"]) == len(scenario["connections"]), document
    assert not proxy.seen()


def test_a_netrc_login_for_the_node_goes_with_every_request_that_carries_no_login_of_its_own(tmp_path):
    with HostileServer() as node:
        node.route("GET", "*/connections*", Answer(200, b'{"total": 0, "results": []}'))
        node.route("GET", "*", Answer(200, b'{"total": 7, "results": []}'))
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-password-of-the-node\n")
        netrc.chmod(0o600)
        # A ready token: JWT requests, which carry no Basic login; requests adds the .netrc one to them.
        token = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2lnbmF0dXJl"
        config = config_file(tmp_path / "zabbix_exalate.conf", node.url, token=token, token_cache="off")
        ran = run_cli("--config", config, "collect", env={"NETRC": str(netrc)})
        assert json.loads(ran.stdout)["ping"] == 1, ran
        sent = node.sent_values("Authorization")
    assert len(sent) == len(node.seen()) >= 4 and set(sent) == {"Basic bmV0cmMtdXNlcjpuZXRyYy1wYXNzd29yZC1vZi10aGUtbm9kZQ=="}, sent


def test_the_node_gets_its_cookie_back_and_the_same_headers_on_every_request_after_the_first(tmp_path):
    cookie = [("Set-Cookie", "JSESSIONID=node-session-1; Path=/")]
    with HostileServer() as node:
        node.route("GET", "*/connections*", Answer(200, b'{"total": 1, "results": [{"name": "A b", "id": 1}]}',
                                                    headers=cookie))
        node.route("GET", "*", Answer(200, b"[]", headers=cookie))
        config = config_file(tmp_path / "zabbix_exalate.conf", node.url, user="monitor", password="pa55-w0rd-node",
                             token_cache="off")
        ran = run_cli("--config", config, "collect")
        assert ran.code == 0 and json.loads(ran.stdout)["connections"][0]["name"] == "A b", ran
        seen = node.seen()
    assert len(seen) == 4 + 6, seen  # the ping alone first, then the rest
    for request in seen[1:]:
        assert request.header("Cookie") == "JSESSIONID=node-session-1", request
        assert [k.lower() for k in request.headers] == ["authorization", "cookie", "connection", "accept",
                                                        "accept-encoding", "user-agent", "host"], request
        assert (request.header("Connection"), request.header("Accept-Encoding")) == \
            ("keep-alive", requests.utils.default_headers()["Accept-Encoding"]), request


def test_two_runs_over_one_session_both_go_through_the_proxy_the_environment_names(write_config, proxy, monkeypatch):
    # The demo polls twice over one pooled session: the second run must read the environment as the first did.
    from zabbix_exalate.collect import collect
    from zabbix_exalate.config import load_node
    from zabbix_exalate.exalate.api import Node
    from zabbix_exalate.exalate.transport import pooled_session
    from zabbix_exalate.runtime import Deadline
    for name, value in proxy_env(proxy, "other.example").items():
        monkeypatch.setenv(name, value)
    cfg = load_node(write_config(), "default")
    session = pooled_session(cfg.max_connections)
    for run in ("first", "second"):
        document = collect(Node(cfg, Deadline(cfg.timeout), session=session), cfg.max_connections).document()
        assert document["ping"] == 0 and f"the proxy 127.0.0.1:{proxy.port}" in document["failures"]["errors"], \
            (run, document)
    assert len(proxy.seen()) == 8, proxy.seen()
