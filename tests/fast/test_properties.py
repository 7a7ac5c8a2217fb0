"""Issue 10, property-based: no configuration text and no response body gets past the error contract.

Over configuration files (random sections, keys and values: control characters, line breaks, huge
values, secrets everywhere a secret may go) the CLI never ends in an internal error (exit 1) and never
prints any part of a secret. Over bodies served by the simulator's `body` fault, every check prints a
count Zabbix can store (0 ... 2^64-1) or fails with one clean line and exit 9.

The budget is fixed (max_examples, derandomize): the same examples every run, well under a minute.
Everything runs in-process through click's runner against the simulator on loopback; no value drawn
here can make the CLI resolve a name or leave the loopback.
"""
import copy
import os
import re
import string
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import BASE_SCENARIO, PASSWORD, SECRET, config_file, control_characters, invoke
from recording import RecordingServer as SimulatorServer, RecordingSimulator as Simulator
from zabbix_exalate.config import NODE_KEYS, SECRET_KEYS, ZABBIX_KEYS

NO_ZABBIX_ENV = {"ZABBIX_URL": "", "ZABBIX_TOKEN": "", "ZABBIX_USER": "", "ZABBIX_PASSWORD": "",
                 "ZABBIX_EXALATE_CONFIG": ""}
MARK = "zxS3cr"  # every secret drawn here carries it, and nothing else does: it must never be printed
# The 1 MB values make hypothesis warn that their repr is large: they are meant to be.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
PROPERTY_SETTINGS = dict(deadline=None, derandomize=True, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def sim():
    with SimulatorServer(Simulator(copy.deepcopy(BASE_SCENARIO))) as server:
        yield server


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="zx-properties-") as path:
        os.chmod(path, 0o700)
        os.mkdir(os.path.join(path, "cache"), 0o700)
        yield path


def run(args, config_path):
    """An exception escaping every handler (what the process would print as a traceback) fails the example."""
    ran = invoke("--config", config_path, *args, env=NO_ZABBIX_ENV)
    return ran.code, ran.stdout, ran.stderr


# -- configuration text -------------------------------------------------------------------------

NAME_CHARS = string.ascii_letters + string.digits + "_-. "
junk = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=":"), max_size=30).filter(
    lambda s: MARK not in s)
names = st.one_of(st.sampled_from(("default", "zabbix", "other", "DEFAULT", "")),
                  st.text(NAME_CHARS, min_size=1, max_size=12)).filter(lambda s: MARK not in s)


def secret_value():
    """A secret as an operator might type (or mistype) it: every piece carries MARK; pieces after the first
    may come on lines of their own (continuation lines, or lines that are not 'key = value' at all)."""
    piece_text = st.one_of(
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=24),      # any Unicode, controls included
        st.text(st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, blacklist_categories=("Cs",)),
                min_size=1, max_size=6),                                      # nothing Latin-1 can carry
        st.sampled_from(("\r", "\x00", "\x0b", "\x85", "\u2028", " ;comment", " #c", '"quoted"', "%41", "\\")),
        st.sampled_from((200_000, 1_100_000)).map(lambda n: "x" * n),         # huge
    )
    first = piece_text.map(lambda t: MARK + t)
    later = piece_text.map(lambda t: MARK + t.replace("=", "").replace(":", "").replace("[", ""))
    separators = st.sampled_from(("\n", "\n    ", " ", "\t"))
    return st.tuples(first, st.lists(st.tuples(separators, later), max_size=2)).map(
        lambda parts: parts[0] + "".join(sep + piece for sep, piece in parts[1]))


def value_for(key: str, sim_url: str, cache: str):
    """Values for a key: those that cannot send the CLI off the loopback, plus junk."""
    if key in SECRET_KEYS:
        return secret_value()
    if key in ("url", "monitor_url"):
        return st.one_of(st.sampled_from((sim_url, sim_url + "/", "http://127.0.0.1:1", "https://127.0.0.1:1",
                                          "http://[::1", "http://x:port/", "ftp://127.0.0.1/", "")), junk)
    if key == "proxy":
        return st.sampled_from(("", "http://127.0.0.1:1", sim_url))
    if key == "token_cache":
        return st.sampled_from(("off", cache, ""))
    if key in ("verify", "client_cert", "client_key"):
        return st.one_of(st.sampled_from(("true", "false", "no", "/nonexistent/ca.pem", "/dev/null", "")),
                         junk.map(lambda s: "./" + s.replace("/", "")))
    if key in ("timeout", "jwt_ttl", "max_connections"):
        return st.one_of(st.sampled_from(("1", "0.5", "0", "-1", "inf", "nan", "1e300", "3600", "86401", "64",
                                          "65", "1.5", "")), junk)
    if key in ("jwt_claims",):
        return st.one_of(st.sampled_from(('{"aud": "exalate"}', "[]", "{", '{"exp": "x"}', "null")), junk)
    return junk


def config_text(sim_url: str, cache: str):
    """Whole files: mostly a working node whose credentials and settings are drawn (so the checks get as far
    as sending them), sometimes anything at all."""
    known = sorted(set(NODE_KEYS) | set(ZABBIX_KEYS))
    keys = st.one_of(st.sampled_from(known), st.text(NAME_CHARS.replace(" ", ""), min_size=1, max_size=12).filter(
        lambda k: k not in known and "proxy" not in k and MARK not in k))

    @st.composite
    def entry(draw, key_strategy=keys):
        key = draw(key_strategy)
        value = draw(value_for(key, sim_url, cache) if key in known else junk)
        spacing = draw(st.sampled_from((" = ", "=", " : ", " =")))
        return f"{key}{spacing}{value}"

    @st.composite
    def section(draw):
        header = draw(st.sampled_from(("[{}]", "[{}", "[ {} ]", "[{}]  ; a comment")))
        lines = [header.format(draw(names))]
        if draw(st.booleans()):
            lines += [f"url = {sim_url}", f"token_cache = {cache}"]
        lines += draw(st.lists(entry(), max_size=6))
        return "\n".join(lines)

    credentials = st.sampled_from((("user", "password"), ("jwt_secret",), ("token",), ("login_user", "login_password"),
                                   ("monitor_user", "monitor_password"), ("user", "password", "jwt_secret")))

    @st.composite
    def working_node(draw):
        name = draw(st.sampled_from(("default", "other")))
        lines = [f"[{name}]", f"url = {sim_url}", f"token_cache = {draw(st.sampled_from((cache, 'off')))}"]
        for key in draw(credentials):
            value = draw(secret_value() if key in SECRET_KEYS else st.one_of(
                st.sampled_from(("monitor", "")), st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)))
            lines.append(f"{key} = {value}")
        lines += draw(st.lists(entry(st.sampled_from(NODE_KEYS)), max_size=2))
        if draw(st.booleans()):
            lines += ["[zabbix]", f"url = {sim_url}", "user = Admin", f"password = {draw(secret_value())}"]
        return "\n".join(lines)

    @st.composite
    def anything(draw):
        preamble = draw(st.lists(entry(), max_size=1))                   # keys before any section
        sections = draw(st.lists(section(), min_size=0, max_size=3))
        return "\n".join(preamble + sections)

    @st.composite
    def text(draw):
        comments = draw(st.sampled_from(("", "; a comment\n", "# another\n")))
        body = draw(st.one_of(working_node(), working_node(), anything()))
        return comments + body + draw(st.sampled_from(("\n", "", "\r\n")))
    return text()


COMMANDS = (["outgoing"], ["ping"], ["sync-requests", "AllContent"], ["discover"], ["collect"],
            ["zabbix", "import-template"], ["--node", "other", "errors"], ["--node", "zabbix", "incoming"])


def test_no_configuration_text_ends_in_an_internal_error_or_prints_a_secret(sim, workdir):
    cache = os.path.join(workdir, "cache")

    @settings(max_examples=250, **PROPERTY_SETTINGS)
    @given(text=config_text(sim.url, cache), command=st.sampled_from(COMMANDS),
           mode=st.sampled_from((0o600, 0o600, 0o644)))
    def check(text, command, mode):
        path = config_file(os.path.join(workdir, "zabbix_exalate.conf"), text=text, mode=mode)
        code, out, err = run(["--timeout", "2", *command], path)
        context = f"exit {code}, stdout {out[:300]!r}, stderr {err[:500]!r}"
        assert code != 1, f"an internal error: {context}"
        assert MARK not in out and MARK not in err, f"a secret from the configuration was printed: {context}"
        if code not in (0,) and command[0] != "zabbix":
            assert err.count("\n") == 1 and err.endswith("\n"), f"not one stderr line: {context}"
            assert not control_characters(err[:-1]), f"control characters on stderr: {context}"

    check()


# -- response bodies ----------------------------------------------------------------------------

U64 = 2 ** 64
CHECKS = {  # command -> the simulator fault path it reads
    "errors": ("4.0/cmonitor", ["errors"]),
    "outgoing": ("4.0/syncevents", ["outgoing"]),
    "incoming": ("4.0/syncrequests", ["incoming"]),
    "sync-requests": ("2.4/relations/*/syncevents/syncrequests", ["sync-requests", "AllContent"]),
    "error-responses": ("2.4/relations/*/syncrequests/errorresponses",
                        ["error-responses", "AllContent", "--reason", "SCRIPT_ERROR"]),
}
FIELDS = ("total", "numErrors", "limit", "results", "errorReason", "message", "x")

numbers = st.one_of(
    st.integers(0, 2 ** 70).map(str),
    st.integers(-5, -1).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(("1e29", "1E400", "18446744073709551616", "18446744073709551615", "-0", "0.0", "5e0", "1.5",
                     "1e-5", "0e999", "2e19", "007", "1_000", "0x10", "NaN", "Infinity", "+1")),
)
strings = st.one_of(st.sampled_from(('"SCRIPT_ERROR"', '"NO_ISSUE_TO_CONNECT_TO"', '""', '"\\u0000"', '"\\ud800"')),
                    st.text(max_size=10).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'))
scalars = st.one_of(numbers, strings, st.sampled_from(("true", "false", "null")))


def json_text():
    """JSON-like text: objects with duplicate keys, odd numbers, arrays, deep or broken nesting."""
    def extend(children):
        members = st.lists(st.tuples(st.sampled_from(FIELDS), children), max_size=5)
        objects = members.map(lambda kv: "{" + ",".join(f'"{k}":{v}' for k, v in kv) + "}")
        arrays = st.lists(children, max_size=6).map(lambda items: "[" + ",".join(items) + "]")
        return st.one_of(objects, arrays)
    return st.recursive(scalars, extend, max_leaves=20)


bodies = st.one_of(
    json_text(),
    st.tuples(st.sampled_from(("total", "numErrors")), numbers, numbers).map(
        lambda t: f'{{"{t[0]}":{t[1]},"{t[0]}":{t[2]},"results":[]}}'),           # duplicate keys
    st.tuples(st.sampled_from(("total", "numErrors")), numbers).map(lambda t: f'{{"limit":0,"{t[0]}":{t[1]}}}'),
    st.integers(1, 200_000).map(lambda n: "[" * n + "]" * n),                    # deep
    st.integers(1, 5_000).map(lambda n: "[" + ",".join(["{}"] * n) + "]"),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),                   # not JSON at all
    json_text().map(lambda t: t + " trailing"),
)


def test_every_body_gives_a_storable_count_or_one_line_and_status_9(sim, workdir):
    path = config_file(os.path.join(workdir, "bodies.conf"), sim.url, jwt_secret=SECRET, user="monitor",
                       password=PASSWORD, token_cache="off")

    @settings(max_examples=300, **PROPERTY_SETTINGS)
    @given(body=bodies, check_name=st.sampled_from(sorted(CHECKS)))
    def check(body, check_name):
        fault_path, args = CHECKS[check_name]
        sim.simulator.update(faults=[{"path": fault_path, "body": body.encode("utf-8", "surrogatepass")}])
        code, out, err = run(args, path)
        context = f"{check_name} on {body[:200]!r}: exit {code}, stdout {out[:100]!r}, stderr {err[:300]!r}"
        if code == 0:
            assert re.fullmatch(r"[0-9]+\n", out) and err == "", context
            assert int(out) < U64, f"a count Zabbix cannot store: {context}"
        else:
            assert code == 9 and out == "", context
            assert err.endswith("\n") and err.count("\n") == 1, f"not one stderr line: {context}"
            assert not control_characters(err[:-1]), f"control characters on stderr: {context}"

    try:
        check()
    finally:
        sim.simulator.update(faults=[])
