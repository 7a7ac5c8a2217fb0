"""Issue 15, classes 4 and 10: huge numbers in any answer, and a node that closes its connections after each answer.

Class 4: a number like 1e999999 or an integer of thousands of digits, anywhere in an answer we parse, ends
every command within its deadline: a count, or one clean line (exit 9) saying the answer holds a number too
large to be a count; never a hang, a traceback or a crash. The same digits inside a string are only text.
Class 10: a GET on a kept-alive connection that the node closed gets one more try on a new connection.

Everything runs as the agent runs it (a process) against real servers on loopback, with a short timeout.
"""
import copy
import json
import select

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import BASE_SCENARIO, PASSWORD, SECRET, SLACK, USER, assert_contract, assert_one_clean_line, \
    config_file, run_cli
from hostile_server import Answer, HostileServer
from recording import RecordingServer as SimulatorServer, RecordingSimulator as Simulator, _CountingHandler

TIMEOUT = 2.5
PROPERTY_SETTINGS = dict(deadline=None, derandomize=True, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
READ = 256 * 1024  # how much the parser asks of a body at once (jsonstream): a number may straddle two reads

# -- class 4: huge numbers ------------------------------------------------------------------------

SIGN = st.sampled_from(["", "-"])
HUGE = st.one_of(
    # Short to write, far beyond any count: converting one to an int took 40 s of CPU.
    st.builds("{}{}{}{}".format, SIGN, st.sampled_from(["1", "9.5", "0.25", "123"]),
              st.sampled_from(["e", "E", "e+", "E+"]), st.integers(21, 10 ** 12)),
    # Long to write: 4,301 digits and more crashed the C parser (SystemError); 65 is already no count.
    st.builds("{}{}".format, SIGN, st.sampled_from(["9", "1"]).flatmap(
        lambda digit: st.integers(65, 30_000).map(lambda n: digit * n))),
    st.builds("{}1.{}e3".format, SIGN, st.integers(64, 5_000).map(lambda n: "0" * n)),
)

# Where a number sits, by the endpoint answering: each place a command reads, and places it only skips.
PLACES = {
    "4.0/cmonitor*": ['{{"numErrors": {}}}', '{{"before": {}, "numErrors": 1}}', '{{"numErrors": 1, "x": [{}]}}'],
    "4.0/syncevents*": ['{{"total": {}, "results": []}}', '{{"results": [{}], "total": 0}}'],
    "*connections*": ['{{"total": {}, "results": []}}',
                      '{{"results": [{{"name": "AllContent", "id": {}, "status": "ACTIVE"}}]}}',
                      '[{{"name": "AllContent", "id": 154, "communication": {{"x": {}}}}}]'],
    "2.4/relations/*/syncevents/syncrequests": ['[{}]', '[{{"syncEventId": {}}}]', '[{{"syncEventId": 3}}, {{"x": [{}]}}]',
                                                '[{{"syncEventId": 3, "sourceIssueKey": {{"urn": {}}}}}]'],
}
# The single checks, with the endpoint each one reads.
CHECKS = {"errors": "4.0/cmonitor*", "outgoing": "4.0/syncevents*", "discover": "*connections*",
          "sync-requests": "2.4/relations/*/syncevents/syncrequests"}
def is_read(place: str) -> bool:
    """Whether the number is a count the command reads (else it sits where the command only skips it)."""
    return place.startswith(('{{"numErrors": {}', '{{"total": {}'))


ANY_PLACE = st.sampled_from([(path, place) for path, places in PLACES.items() for place in places])


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """The simulator, and a configuration for it: (server, path)."""
    directory = tmp_path_factory.mktemp("numbers")
    cache = directory / "token-cache"
    cache.mkdir(mode=0o700)
    with SimulatorServer(Simulator(copy.deepcopy(BASE_SCENARIO))) as server:
        path = config_file(directory / "zabbix_exalate.conf", url=server.url, jwt_secret=SECRET, user=USER,
                           password=PASSWORD, token_cache=str(cache))
        yield server, path


def serve(server, path: str, body: str) -> None:
    server.simulator.update(faults=[{"path": path, "body": body}])


def run(config: str, *args: str, env=None):
    """The command as the agent runs it; a run that outlives its deadline by far fails here, not by hanging."""
    ran = run_cli("--config", config, "--timeout", str(TIMEOUT), *args, env=env, timeout=TIMEOUT + 20)
    assert ran.code not in (1, 139, -11), f"a crash or an internal error: {ran}"
    assert "Traceback" not in ran.stderr, ran
    assert ran.elapsed <= TIMEOUT + SLACK, f"{ran.elapsed:.2f} s for a timeout of {TIMEOUT:g} s: {ran}"
    if ran.stderr:
        assert_one_clean_line(ran.stderr, ran)
    return ran


def check_args(command: str):
    return [command, "AllContent"] if command == "sync-requests" else [command]


@settings(max_examples=12, **PROPERTY_SETTINGS)
@given(number=HUGE, data=st.data())
def test_a_single_check_reading_a_huge_number_says_so_within_the_deadline(node, number, data):
    server, config = node
    command = data.draw(st.sampled_from(sorted(CHECKS)), label="command")
    path = CHECKS[command]
    place = data.draw(st.sampled_from(PLACES[path]), label="place")
    serve(server, path, place.format(number))
    ran = run(config, *check_args(command))
    if is_read(place) or len(number.lstrip("-")) > 64:  # a count we read, or a number no count is as long as
        assert_contract(ran, 9, "a number too large to be a count", timeout=TIMEOUT)
    elif ran.code:  # a number in a place we skip, short to write: the answer may still be read
        assert_contract(ran, 9, timeout=TIMEOUT)


@pytest.mark.parametrize("command", ["ping", "collect", "status"])
@settings(max_examples=6, **PROPERTY_SETTINGS)
@given(number=HUGE, where=ANY_PLACE)
def test_the_whole_node_commands_keep_their_deadline_whatever_number_an_answer_holds(node, command, number, where):
    server, config = node
    serve(server, where[0], where[1].format(number))
    ran = run(config, command)
    if command == "ping":
        assert ran.code == 0 and ran.stdout in ("1\n", "0\n"), ran
    elif command == "collect":
        assert ran.code == 0, ran
        json.loads(ran.stdout)
        if is_read(where[1]) or len(number.lstrip("-")) > 64:
            assert "a number too large to be a count" in ran.stdout, ran
    else:
        assert ran.code in (0, 9), ran


@pytest.mark.parametrize("backend", ["yajl2_c", "python"])
@pytest.mark.parametrize("number", ["1e999999", "-1e999999", "1e400000", "9" * 4301, "-" + "9" * 100_000])
def test_each_parser_refuses_the_issue_s_numbers(node, backend, number):
    """The examples of the issue, with the C parser and the pure-Python one (what the lowest ijson may use)."""
    server, config = node
    serve(server, "4.0/cmonitor*", '{"numErrors": %s}' % number)
    ran = run(config, "errors", env={"IJSON_BACKEND": backend})
    assert_contract(ran, 9, "a number too large to be a count", timeout=TIMEOUT)


# A string that looks like JSON, numbers and all, with every way a quote can be escaped or not.
TEXT = st.lists(st.one_of(st.integers(1, 3000).map(lambda n: "7" * n), st.sampled_from(
    ['"', '\\', '\\"', '\\\\', ': ', ', ', '[', 'e', '-', '1e999999', '}']), st.text(max_size=5)), max_size=8).map("".join)


@settings(max_examples=15, **PROPERTY_SETTINGS)
@given(text=TEXT, shift=st.integers(-80, 80), elements=st.integers(1, 3))
def test_digits_inside_strings_are_only_text_wherever_a_read_ends(node, text, shift, elements):
    server, config = node
    quoted = json.dumps(text)
    pad = max(0, READ + shift - len('[{"p": "') - 2)  # puts the text across the end of the first read
    body = [f'{{"p": "{"x" * pad}", "message": {quoted}}}'] + [f'{{"syncEventId": {i}, "m": {quoted}}}'
                                                           for i in range(elements - 1)]
    serve(server, "2.4/relations/*/syncevents/syncrequests", "[" + ",".join(body) + "]")
    ran = run(config, "sync-requests", "AllContent")
    assert (ran.code, ran.stdout) == (0, f"{elements}\n"), ran


@settings(max_examples=8, **PROPERTY_SETTINGS)
@given(shift=st.integers(-70, 70), digits=st.integers(65, 200), quotes=st.integers(0, 3))
def test_a_long_number_across_the_end_of_a_read_is_refused(node, shift, digits, quotes):
    server, config = node
    before = '{"m": "\\"' + "\\\\" * quotes + '"},'  # escaped quotes before it must not confuse the count
    pad = max(0, READ + shift - len('[{"p": "", ') - len(before) - digits // 2)
    serve(server, "2.4/relations/*/syncevents/syncrequests",
          f'[{{"p": "{"x" * pad}"}}, {before} {"9" * digits}]')
    assert_contract(run(config, "sync-requests", "AllContent"), 9, "a number too large to be a count",
                    timeout=TIMEOUT)


# -- class 10: a node that closes its connections -------------------------------------------------

class _ClosingHandler(_CountingHandler):
    """Answers one request a connection, without saying so (no Connection: close), then closes it: at once, or
    after waiting up to `linger` seconds for the next request, which it drops unanswered, as a server with a
    short idle timeout does when a request arrives as it closes."""

    def handle(self):
        self.handle_one_request()
        if self.server.linger:
            select.select([self.connection], [], [], self.server.linger)
        self.close_connection = True


class ClosingServer(SimulatorServer):
    handler = _ClosingHandler
    linger = 0.0


@pytest.fixture(params=[0.0, 0.3], ids=["closes-at-once", "closes-when-idle"])
def closing_node(request, tmp_path):
    cache = tmp_path / "token-cache"
    cache.mkdir(mode=0o700)
    scenario = copy.deepcopy(BASE_SCENARIO)
    scenario["connections"] = [dict(scenario["connections"][0], name=f"C{i}", id=100 + i) for i in range(6)]
    with ClosingServer(Simulator(scenario)) as server:
        server.linger = request.param
        yield server, config_file(tmp_path / "zabbix_exalate.conf", url=server.url, jwt_secret=SECRET, user=USER,
                                  password=PASSWORD, token_cache=str(cache), max_connections="2")


def test_collect_loses_no_value_on_a_node_that_closes_each_connection(closing_node):
    server, config = closing_node
    for _ in range(3):
        ran = run(config, "collect")
        assert ran.code == 0, ran
        document = json.loads(ran.stdout)
        lost = {c["name"]: c.get("failures") for c in document["connections"] if c.get("failures")}
        assert not lost and "failures" not in document, f"values lost: {lost or document.get('failures')}"
        assert len(document["connections"]) == 6 and all(c["sync_requests"] == 1 for c in document["connections"])


@pytest.fixture
def hostile(tmp_path):
    with HostileServer() as server:
        yield server


def hostile_config(tmp_path, server, **keys) -> str:
    cache = tmp_path / "token-cache"
    cache.mkdir(mode=0o700, exist_ok=True)
    return config_file(tmp_path / "zabbix_exalate.conf", url=server.url, token_cache=str(cache), **keys)


def test_a_get_closed_unanswered_is_tried_once_more_and_no_more(hostile, tmp_path):
    hostile.route("GET", "*", Answer(hang_up=True))
    ran = run(hostile_config(tmp_path, hostile, jwt_secret=SECRET), "outgoing")
    assert_contract(ran, 8, "closed the connection without answering", timeout=TIMEOUT)
    assert len(hostile.seen("GET")) == 2, f"{len(hostile.seen('GET'))} GETs: {ran}"


def test_a_login_closed_unanswered_is_never_sent_twice(hostile, tmp_path):
    hostile.route("POST", "*", Answer(hang_up=True))
    ran = run(hostile_config(tmp_path, hostile, login_password="login-pa55phrase"), "outgoing")
    assert_contract(ran, 8, timeout=TIMEOUT)
    assert len(hostile.seen("POST")) == 1, f"{len(hostile.seen('POST'))} logins: {ran}"


def test_the_second_try_keeps_the_first_one_s_deadline(hostile, tmp_path):
    hostile.route("GET", "*", Answer(hang_up=True, delay=0.7 * TIMEOUT))
    ran = run(hostile_config(tmp_path, hostile, jwt_secret=SECRET), "outgoing")
    assert_contract(ran, (7, 8), timeout=TIMEOUT)
