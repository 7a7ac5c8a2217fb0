"""Issue 10: a node, a login answer, a Zabbix API or a configuration that misbehaves on purpose.

Whatever it does, the check the agent runs keeps the contract (helpers.assert_contract): nothing
on stdout, one clean line on stderr, the documented exit status, within the timeout + 0.5 s of the
process's start, and no secret in any form. Every check runs as its own process, as the agent runs it.
"""
import base64
import json
import os
import time

import pytest

from helpers import SLACK, assert_contract, config_file, require_binary, run_cli, secret_forms
from hostile_server import (Answer, HostileServer, big_string_body, echo_body, echo_headers, many_entries_body,
                            self_signed_cert, zabbix_api)
from nginx_node import Nginx

USER = "monitor"
PASSWORD = "h0stile-pa55 w\u00f6rd/&x"      # Latin-1 (ö), with characters URL- and JSON-encoding change
JWT_SECRET = "h0stile-jwt-signing-s3cret"
LOGIN_PASSWORD = 'l0gin-"pa55"\\w\u00f6rd'   # a quote, a backslash, a non-ASCII letter: JSON escapes them all
DEFAULT_TIMEOUT = 2.5
TOTAL = b'{"limit":0,"total":3,"results":[]}'


@pytest.fixture
def node():
    with HostileServer() as server:
        yield server


@pytest.fixture
def cache_dir(tmp_path):
    path = tmp_path / "token-cache"
    path.mkdir(mode=0o700)
    return str(path)


@pytest.fixture
def configure(tmp_path, node, cache_dir):
    """configure(**keys) -> a configuration path for the hostile node; a key set to None is left out."""
    def write(url=None, section="default", **keys):
        values = {"user": USER, "password": PASSWORD, "jwt_secret": JWT_SECRET, "token_cache": cache_dir, **keys}
        return config_file(tmp_path / "zabbix_exalate.conf", url or node.url, section=section, **values)
    return write


def secrets_of(server: HostileServer, *more: str):
    """Every secret of these tests in every form, and the tokens and Basic pairs the client actually sent."""
    sent = server.sent_values("X-exalate-jwt") + server.sent_values("Authorization")
    return secret_forms(PASSWORD, JWT_SECRET, LOGIN_PASSWORD, *sent, *more, basic=[(USER, PASSWORD)])


def strings_in(value):
    """Every string of a JSON document, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, str):
        yield value


def jwt_like(payload: dict, signature: str) -> str:
    encode = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")  # noqa: E731
    return f"{encode({'alg': 'HS256', 'typ': 'JWT'})}.{encode(payload)}.{signature}"


# -- 2. secrets: a node that quotes back what it was sent -----------------------------------------

ECHO = echo_headers("Authorization", "X-exalate-jwt")


@pytest.mark.parametrize("command, keys", [
    (["outgoing"], {}),                                             # 4.0 API: basic auth
    (["outgoing"], {"user": None, "password": None}),               # 4.0 API: the minted JWT
    (["sync-requests", "AllContent"], {}),                          # 2.4 API: the minted JWT
], ids=["basic-auth", "minted-jwt", "per-connection-jwt"])
def test_a_node_echoing_the_credentials_in_a_418_never_gets_them_printed(node, configure, command, keys):
    node.route("*", "*", Answer(418, ECHO))
    ran = run_cli("--config", configure(**keys), *command)
    assert node.seen(), "the request never reached the node"
    assert_contract(ran, 9, "418", timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


@pytest.mark.parametrize("keys", [{}, {"user": None, "password": None}], ids=["basic-auth", "minted-jwt"])
def test_ping_against_a_node_echoing_the_credentials_prints_0_and_no_secret(node, configure, keys):
    node.route("*", "*", Answer(418, ECHO))
    ran = run_cli("--config", configure(**keys), "ping")
    assert_contract(ran, 0, "418", stdout="0\n", timeout=DEFAULT_TIMEOUT,
                    secrets=secrets_of(node))


def test_collect_against_a_node_echoing_the_credentials_keeps_them_out_of_the_document(node, configure):
    node.route("GET", "*/4.0/connections", Answer(200, b'{"results": [{"name": "AllContent", "id": 1}]}'))
    node.route("*", "*", Answer(418, ECHO))
    ran = run_cli("--config", configure(), "collect")
    forms = secrets_of(node)
    assert node.sent_values("X-exalate-jwt") and node.sent_values("Authorization"), "both kinds were not sent"
    assert (ran.code, ran.stderr) == (0, ""), ran
    assert ran.elapsed <= DEFAULT_TIMEOUT + SLACK, f"{ran.elapsed:.2f} s"
    document = json.loads(ran.stdout)
    assert document["ping"] == 0, document
    leaks = sorted({form for text in strings_in(document) for form in forms if form in text})
    assert not leaks, f"the document holds {leaks}: {ran.stdout}"
    assert not [form for form in forms if form in ran.stdout], ran.stdout


def test_a_login_refusal_quoting_the_login_request_does_not_print_the_password(node, configure):
    # Some frameworks put the request they could not process into their 4xx: here the login's JSON body,
    # where login_password is JSON-escaped.
    node.route("POST", "*/4.0/authenticate", Answer(422, echo_body))
    path = configure(user=None, password=None, jwt_secret=None, login_user="monitor", login_password=LOGIN_PASSWORD)
    ran = run_cli("--config", path, "outgoing")
    assert node.seen("POST"), "no login was attempted"
    assert json.dumps(LOGIN_PASSWORD)[1:-1].encode() in node.seen("POST")[0].body  # what the node quotes back
    assert_contract(ran, 9, "422", timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


def test_a_redirect_carrying_the_password_url_encoded_does_not_print_it(node, configure):
    from urllib.parse import quote
    target = f"https://sso.example/login?user={USER}&password={quote(PASSWORD, safe='')}"
    node.route("*", "*", Answer(302, b"", headers=[("Location", target)]))
    ran = run_cli("--config", configure(), "outgoing")
    assert_contract(ran, 9, "login page", timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


# -- 3 and 8. credentials HTTP cannot carry, and other configuration mistakes ----------------------

@pytest.mark.parametrize("keys, named", [
    ({"password": "pw\u20ac-not-latin1"}, "password"),
    ({"user": "\u76e3\u8996\u30e6\u30fc\u30b6"}, "user"),
    ({"user": None, "password": None, "jwt_secret": None, "token": "t0ken-with-\u20ac-in-it"}, "token"),
    ({"user": None, "password": None, "jwt_secret": None, "token": "t0ken-first-line\nsecond-line"}, "token"),
    ({"password": "pa55-first-line\nsecond-line"}, "password"),
], ids=["password-euro", "user-cjk", "token-euro", "token-line-break", "password-line-break"])
def test_credentials_http_cannot_carry_are_a_configuration_error(node, configure, keys, named):
    node.route("*", "*", Answer(200, TOTAL))
    ran = run_cli("--config", configure(**keys), "outgoing")
    values = [v for v in keys.values() if v]
    assert_contract(ran, 3, named, timeout=DEFAULT_TIMEOUT,
                    secrets=secrets_of(node, *values, *[v.split("\n")[0] for v in values]))


def test_ping_with_a_non_latin1_password_is_a_configuration_error_not_a_traceback(node, configure):
    node.route("*", "*", Answer(200, TOTAL))
    ran = run_cli("--config", configure(password="pw\u20ac-not-latin1"), "ping")
    assert "Traceback" not in ran.stderr, f"a traceback, ending in: {ran.stderr.strip().splitlines()[-1]}"
    assert_contract(ran, 3, "password", timeout=DEFAULT_TIMEOUT,
                    secrets=secrets_of(node, "pw\u20ac-not-latin1"))


def test_a_missing_client_certificate_file_is_a_configuration_error(node, configure, tmp_path):
    node.route("*", "*", Answer(200, TOTAL))
    ran = run_cli("--config", configure(client_cert=str(tmp_path / "no-such-cert.pem")), "outgoing")
    assert_contract(ran, 3, "client_cert", timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


@pytest.mark.parametrize("header", ["X-exalate-jwt:", "X exalate jwt"], ids=["colon", "space"])
def test_an_invalid_jwt_header_name_is_a_configuration_error(node, configure, header):
    node.route("*", "*", Answer(200, TOTAL))
    ran = run_cli("--config", configure(user=None, password=None, jwt_header=header), "outgoing")
    assert_contract(ran, 3, "jwt_header", timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


# -- 4. a login answer that would poison the token cache --------------------------------------------

BAD_TOKENS = {
    "line-break": jwt_like({"exp": int(time.time()) + 3600}, "c2lnbmF0dXJl\r\nX-Injected:1"),
    "non-ascii": jwt_like({"exp": int(time.time()) + 3600}, "s\u00efgnature\u20ac"),
}


@pytest.fixture
def bad_login(node, configure):
    """A node whose login hands out the given token, and a configuration that logs in (token cache on)."""
    def setup(token: str) -> str:
        node.route("POST", "*/4.0/authenticate", Answer(200, json.dumps({"token": token}).encode()))
        node.route("GET", "*", Answer(200, TOTAL))
        return configure(user=None, password=None, jwt_secret=None, login_user="monitor",
                         login_password=LOGIN_PASSWORD)
    return setup


def test_a_good_login_token_is_cached_between_runs(node, bad_login):
    # The control for the two tests below: with a token that can be sent, one login serves both runs.
    path = bad_login(jwt_like({"exp": int(time.time()) + 3600}, "c2lnbmF0dXJl"))
    for _ in range(2):
        ran = run_cli("--config", path, "outgoing")
        assert (ran.code, ran.stdout, ran.stderr) == (0, "3\n", ""), ran
    assert len(node.seen("POST", "*/4.0/authenticate")) == 1


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_login_token_that_cannot_be_sent_is_an_unexpected_response(node, bad_login, kind):
    ran = run_cli("--config", bad_login(BAD_TOKENS[kind]), "outgoing")
    assert_contract(ran, 9, "token", timeout=DEFAULT_TIMEOUT,
                    secrets=secrets_of(node, BAD_TOKENS[kind]))


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_bad_login_token_is_never_cached_the_next_run_logs_in_again(node, bad_login, kind):
    path = bad_login(BAD_TOKENS[kind])
    first = run_cli("--config", path, "outgoing")
    second = run_cli("--config", path, "outgoing")
    logins = len(node.seen("POST", "*/4.0/authenticate"))
    assert logins == 2, f"{logins} login(s) for two runs: the first run's bad token was cached ({first}, {second})"
    assert_contract(second, 9, timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node, BAD_TOKENS[kind]))


# -- 5 and 8. discovery: answers too big or too deep to hold ----------------------------------------

def test_a_connection_list_of_millions_of_entries_is_refused_quickly_in_bounded_memory(node, configure):
    # 2M empty entries: 6 MB on the wire, far below the byte cap, but 2M Python objects once parsed whole.
    # Quickly: refused (9) within what the default timeout promises.
    chunks, length = many_entries_body(2_000_000)
    node.route("GET", "*/4.0/connections", Answer(200, chunks, length=length))
    ran = run_cli("--config", configure(), "discover", timeout=60, memory=True)
    problems = [] if ran.code == 9 else [f"exit {ran.code}, expected 9"]
    problems += [] if ran.peak_mb < 100 else [f"peak memory {ran.peak_mb:.0f} MB, expected under 100 MB"]
    problems += [] if ran.elapsed <= DEFAULT_TIMEOUT + SLACK else [f"{ran.elapsed:.2f} s, expected a quick refusal"]
    assert not problems, f"{'; '.join(problems)}: {ran}"
    assert_contract(ran, 9, secrets=secrets_of(node))


DEEP = b'{"results":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def test_a_100k_deep_connection_list_is_an_unexpected_response(node, configure):
    node.route("GET", "*/4.0/connections", Answer(200, DEEP))
    ran = run_cli("--config", configure(), "discover")
    assert_contract(ran, 9, timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


def test_ping_by_discovery_against_100k_deep_json_prints_0_not_a_traceback(node, configure):
    node.route("GET", "*/4.0/connections", Answer(200, DEEP))
    ran = run_cli("--config", configure(ping_check="discover"), "ping")
    assert_contract(ran, 0, stdout="0\n", timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


# -- 6. the configuration is read within the budget -------------------------------------------------

def test_a_fifo_as_configuration_ends_within_the_budget(tmp_path):
    fifo = tmp_path / "fifo.conf"
    os.mkfifo(fifo)
    ran = run_cli("--config", str(fifo), "outgoing", timeout=30)
    assert_contract(ran, 3, timeout=DEFAULT_TIMEOUT)


def test_dev_zero_as_configuration_is_refused_within_the_budget():
    ran = run_cli("--config", "/dev/zero", "outgoing", timeout=30)
    assert_contract(ran, 3, timeout=DEFAULT_TIMEOUT)


# -- 7. numbers no operator could predict, or Zabbix could not store ---------------------------------

@pytest.mark.parametrize("body", [b'{"limit":0,"total":5,"total":7,"results":[]}',
                                  b'{"limit":0,"total":5,"total":5,"results":[]}'], ids=["5-then-7", "5-twice"])
def test_a_duplicate_total_is_an_unexpected_response(node, configure, body):
    node.route("GET", "*/4.0/syncevents*", Answer(200, body))
    ran = run_cli("--config", configure(), "outgoing")
    assert_contract(ran, 9, "total", timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


@pytest.mark.parametrize("reason", ["NO_ISSUE_TO_CONNECT_TO", "SCRIPT_ERROR"])
def test_an_element_with_error_reason_twice_is_an_unexpected_response(node, configure, reason):
    body = (b'[{"errorReason":"NO_ISSUE_TO_CONNECT_TO","errorReason":"SCRIPT_ERROR","message":"x"},'
            b'{"errorReason":"SCRIPT_ERROR","message":"y"}]')
    node.route("GET", "*/2.4/relations/AllContent/syncrequests/errorresponses", Answer(200, body))
    ran = run_cli("--config", configure(), "error-responses", "AllContent", "--reason", reason)
    assert_contract(ran, 9, "errorReason", timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


NODE_TOTALS = {"outgoing": ("*/4.0/syncevents*", "total"), "errors": ("*/4.0/cmonitor", "numErrors")}


@pytest.mark.parametrize("command", NODE_TOTALS)
@pytest.mark.parametrize("number", ["1e29", "18446744073709551616", "1e400"])
def test_a_total_beyond_what_zabbix_stores_is_an_unexpected_response(node, configure, command, number):
    pattern, field = NODE_TOTALS[command]
    node.route("GET", pattern, Answer(200, f'{{"{field}": {number}, "results": []}}'.encode()))
    ran = run_cli("--config", configure(), command)
    assert_contract(ran, 9, field, timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


def test_the_largest_total_zabbix_stores_is_printed(node, configure):
    node.route("GET", "*/4.0/syncevents*", Answer(200, b'{"limit":0,"total":18446744073709551615,"results":[]}'))
    ran = run_cli("--config", configure(), "outgoing")
    assert (ran.code, ran.stdout, ran.stderr) == (0, "18446744073709551615\n", ""), ran


@pytest.mark.parametrize("name", ["x/../../relations/Other", "x%2F..%2F..%2Frelations%2FOther", "a/./b", "../Other",
                                  "Other/..", "./Other"])
def test_a_connection_name_that_is_path_navigation_is_a_configuration_error(node, configure, name):
    node.route("*", "*", Answer(200, b"[1, 2, 3]"))
    ran = run_cli("--config", configure(), "sync-requests", name)
    assert_contract(ran, 3, timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))
    assert not node.seen("GET", "*/2.4/*"), [r.path for r in node.seen()]


def test_a_connection_argument_that_is_not_utf8_is_a_configuration_error(node, configure):
    node.route("*", "*", Answer(200, b"[1, 2, 3]"))
    ran = run_cli("--config", configure(), "sync-requests", b"All\xffContent\xfe")
    assert_contract(ran, 3, timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


NGINX_DECODING = """
daemon off;
@USER@
worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 16; }
http {
    client_body_temp_path @DIR@/tmp/body;
    proxy_temp_path @DIR@/tmp/proxy;
    access_log off;
    server {
        listen 127.0.0.1:@PORT@;
        # A URI in proxy_pass: nginx passes its normalised URI on: %2F decoded, dot segments resolved.
        location / { proxy_pass http://127.0.0.1:@UPSTREAM@/; }
    }
}
"""


def test_behind_a_decoding_reverse_proxy_a_dotted_name_never_reads_another_connection(node, configure, tmp_path):
    require_binary("nginx")
    other = "*/2.4/relations/Other/syncevents/syncrequests"
    node.route("GET", other, Answer(200, b"[1, 2, 3, 4, 5, 6, 7]"))
    node.route("GET", "*", Answer(400, b"Connection `x` not found.", content_type="text/plain"))
    with Nginx(tmp_path, NGINX_DECODING, UPSTREAM=str(node.port)) as proxy:
        ran = run_cli("--config", configure(url=f"http://127.0.0.1:{proxy.port}"), "sync-requests",
                      "x/../../relations/Other")
    reached = [r.path for r in node.seen("GET", other)]
    assert not reached, f"the name read connection Other's queue through nginx: {reached}; {ran}"
    assert_contract(ran, 3, timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


# -- 9. messages that mislead or break the one-line rule ---------------------------------------------

@pytest.fixture(scope="module")
def localhost_cert(tmp_path_factory):
    require_binary("openssl")
    return self_signed_cert(str(tmp_path_factory.mktemp("tls")), "localhost")


def test_a_tls_host_name_mismatch_is_named_as_such(localhost_cert, tmp_path, cache_dir):
    cert, key = localhost_cert
    with HostileServer(tls=(cert, key)) as server:
        server.route("*", "*", Answer(200, TOTAL))
        # The certificate is trusted (verify = it) and valid; only the name (127.0.0.1, not localhost) is wrong.
        path = config_file(tmp_path / "tls.conf", f"https://127.0.0.1:{server.port}", user=USER, password=PASSWORD,
                           verify=cert, token_cache=cache_dir)
        ran = run_cli("--config", path, "outgoing")
    assert_contract(ran, 8, "host name", absent=["not trusted"], timeout=DEFAULT_TIMEOUT,
                    secrets=secret_forms(PASSWORD, basic=[(USER, PASSWORD)]))


def test_the_same_certificate_is_trusted_under_its_own_name(localhost_cert, tmp_path, cache_dir):
    cert, key = localhost_cert
    with HostileServer(tls=(cert, key)) as server:
        server.route("*", "*", Answer(200, TOTAL))
        path = config_file(tmp_path / "tls.conf", f"https://localhost:{server.port}", user=USER, password=PASSWORD,
                           verify=cert, token_cache=cache_dir)
        ran = run_cli("--config", path, "outgoing")
    assert (ran.code, ran.stdout, ran.stderr) == (0, "3\n", ""), ran


@pytest.mark.parametrize("status, code", [(418, 9), (503, 6)])
def test_a_reason_phrase_with_control_characters_gives_one_clean_line(node, configure, status, code):
    # \r returns to the line's start (a terminal overwrites what came before), \x0b and \x85 (NEL) break it.
    node.route("*", "*", Answer(status, b'{"message": "no"}', reason="Short\rand\x0bStout\x85teapot"))
    ran = run_cli("--config", configure(), "outgoing")
    assert_contract(ran, code, str(status), timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


def test_a_node_name_with_a_line_break_gives_one_line(node, configure):
    ran = run_cli("--config", configure(), "--node", "a\nb", "outgoing")
    assert_contract(ran, 3, timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


# -- 10. one huge string in a queue ---------------------------------------------------------------

def test_a_300_mb_string_is_counted_in_time_or_refused_quickly(node, configure):
    chunks, length = big_string_body(300)
    node.route("GET", "*/2.4/relations/Big/syncevents/syncrequests", Answer(200, chunks, length=length))
    ran = run_cli("--config", configure(), "sync-requests", "Big", timeout=60)
    if ran.code == 0:
        assert (ran.stdout, ran.stderr) == ("1\n", ""), ran
        assert ran.elapsed <= DEFAULT_TIMEOUT + SLACK, f"counted, but in {ran.elapsed:.2f} s: {ran}"
    else:
        assert_contract(ran, 9, timeout=DEFAULT_TIMEOUT, secrets=secrets_of(node))


# -- 8. the zabbix commands: a Zabbix API that answers nonsense --------------------------------------

ZABBIX_PASSWORD = "zbx-pa55word-never-shown"
def zabbix(server: HostileServer, tmp_path, *args: str):
    env = {"ZABBIX_URL": server.url, "ZABBIX_USER": "Admin", "ZABBIX_PASSWORD": ZABBIX_PASSWORD, "ZABBIX_TOKEN": "",
           "ZABBIX_EXALATE_CONFIG": str(tmp_path / "none.conf")}
    return run_cli("--config", str(tmp_path / "none.conf"), "zabbix", *args, env=env)


@pytest.mark.parametrize("command, answers", [
    (["import-template"], {"apiinfo__version": {"result": "seven"}}),
    (["import-template"], {"apiinfo__version": {"error": "the API is down for maintenance"}}),
    (["add-host", "exalate-jira"], {"apiinfo__version": {"result": ["6.0.14"]}}),
    (["add-host", "exalate-jira"], {"host__create": {"result": ["10500"]}}),
    (["add-host", "exalate-jira"], {"user__login": {"error": "denied"}}),
], ids=["version-not-a-number", "error-is-a-string", "version-is-a-list", "create-result-is-a-list",
        "login-error-is-a-string"])
def test_a_zabbix_api_answering_nonsense_gives_one_line_and_no_traceback(tmp_path, command, answers):
    with HostileServer() as server:
        server.route("POST", "*/api_jsonrpc.php", zabbix_api(**answers))
        ran = zabbix(server, tmp_path, *command)
    assert "Traceback" not in ran.stderr, f"a traceback, ending in: {ran.stderr.strip().splitlines()[-1]}"
    line = assert_contract(ran, (10, 9, 1), stdout="", secrets=secret_forms(ZABBIX_PASSWORD))
    if ran.code == 1:
        assert "internal error" in line and "Error" in line, line  # the exception type, e.g. TypeError


def test_a_zabbix_error_quoting_the_password_leaves_no_part_of_it(tmp_path):
    # Masking after cutting the detail to 200 characters would leave the password's first characters.
    head = "Incorrect user name or password or account is temporarily blocked."
    quoted = f" Login attempt with password '{ZABBIX_PASSWORD}'."
    detail = head + "." * (190 - len(head) - quoted.index(ZABBIX_PASSWORD)) + quoted  # the password at 190
    assert detail.index(ZABBIX_PASSWORD) < 195 < detail.index(ZABBIX_PASSWORD) + len(ZABBIX_PASSWORD)
    with HostileServer() as server:
        server.route("POST", "*/api_jsonrpc.php", zabbix_api(
            user__login={"error": {"code": -32602, "message": "Invalid params.", "data": detail}}))
        ran = zabbix(server, tmp_path, "import-template")
    line = assert_contract(ran, 4, stdout="", secrets=secret_forms(ZABBIX_PASSWORD))
    assert ZABBIX_PASSWORD[:8] not in line, f"part of the password is shown: {line}"
