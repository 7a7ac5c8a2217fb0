"""Issue 10, class 9: behind an HTTP proxy (proxy = ...), the proxy's own failures are named as the proxy's.

The hostile server plays the proxy: the node's name (node.example.invalid) is never resolved, so every
answer comes from the proxy. A proxy that refuses (407) or hangs up is not the node's problem, and the
operator must be sent to the proxy, not to the node's log. The proxy's credentials are secrets too.
"""
import pytest

from helpers import assert_contract, config_file, run_cli, secret_forms
from hostile_server import Answer, HostileServer, echo_headers

NODE = "http://node.example.invalid:8080"
USER, PASSWORD = "monitor", "pr0xied-node-pa55word"
PROXY_USER, PROXY_PASSWORD = "corp-user", "pr0xy-pa55word-secret"
DEFAULT_TIMEOUT = 2.5
# A proxy's refusal is unreachable (8) as today's tunnel failures are, or an authentication refused (4):
# either way, not a node's "unexpected response" (9).
PROXY_STATUSES = (4, 8)


@pytest.fixture
def proxy():
    with HostileServer() as server:
        yield server


def configure(tmp_path, proxy_url: str, url: str = NODE) -> str:
    return config_file(tmp_path / "zabbix_exalate.conf", url, user=USER, password=PASSWORD, proxy=proxy_url,
                       token_cache="off")


def secrets(proxy: HostileServer):
    sent = proxy.sent_values("Authorization") + proxy.sent_values("Proxy-Authorization")
    return secret_forms(PASSWORD, PROXY_PASSWORD, *sent, basic=[(USER, PASSWORD), (PROXY_USER, PROXY_PASSWORD)])


REFUSAL = Answer(407, b'{"message": "proxy authentication required"}', headers=[
    ("Proxy-Authenticate", 'Basic realm="corporate proxy"')])


def test_a_proxy_refusing_with_407_is_named_not_the_node(proxy, tmp_path):
    proxy.route("*", "*", REFUSAL)
    ran = run_cli("--config", configure(tmp_path, proxy.url), "outgoing")
    assert proxy.seen(), f"the request did not go through the proxy: {ran}"
    assert_contract(ran, PROXY_STATUSES, "proxy", f"127.0.0.1:{proxy.port}",
                    timeout=DEFAULT_TIMEOUT, secrets=secrets(proxy))


def test_a_proxy_echoing_its_credentials_does_not_get_them_printed(proxy, tmp_path):
    proxy.route("*", "*", Answer(407, echo_headers("Proxy-Authorization", "Authorization"),
                                 headers=REFUSAL.headers))
    proxy_url = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
    ran = run_cli("--config", configure(tmp_path, proxy_url), "outgoing")
    assert proxy.sent_values("Proxy-Authorization"), f"the proxy credentials were not sent: {ran}"
    assert_contract(ran, PROXY_STATUSES, "proxy", absent=[f"{PROXY_USER}:"],
                    timeout=DEFAULT_TIMEOUT, secrets=secrets(proxy))


def test_a_proxy_hanging_up_is_named_not_the_node(proxy, tmp_path):
    proxy.route("*", "*", Answer(hang_up=True))
    ran = run_cli("--config", configure(tmp_path, proxy.url), "outgoing")
    assert proxy.seen(), f"the request did not go through the proxy: {ran}"
    assert_contract(ran, 8, "proxy", f"127.0.0.1:{proxy.port}", absent=["the node closed"],
                    timeout=DEFAULT_TIMEOUT, secrets=secrets(proxy))


def test_an_https_tunnel_refused_by_the_proxy_names_the_proxy(proxy, tmp_path):
    proxy.route("CONNECT", "*", REFUSAL)
    path = configure(tmp_path, proxy.url, url="https://node.example.invalid")
    ran = run_cli("--config", path, "outgoing")
    assert proxy.seen("CONNECT"), f"no tunnel was asked of the proxy: {ran}"
    assert_contract(ran, PROXY_STATUSES, "proxy", f"127.0.0.1:{proxy.port}",
                    timeout=DEFAULT_TIMEOUT, secrets=secrets(proxy))
