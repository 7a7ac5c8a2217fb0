"""Issue 15, classes 3 and 5: send reads the agent's configuration as the agent does, goes nowhere it was not told,
and ends cleanly within its deadline whatever a trapper answers.

The node in these tests is down (a closed port, so collecting takes a moment and send sends ping 0): what is
tested is the sending. run_cli where time or memory is measured, invoke (in this process) elsewhere.
"""
import json
import os
import socket
import string
import zlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import PASSWORD, USER, assert_contract, config_file, free_ports, invoke, run_cli
from trapper import Trapper, compressed, endless, packet, raw, redirect, reply, silence, trickle, zabbix_info
from test_dns import silent_dns_namespace  # noqa: F401 (a fixture: a network namespace whose resolver is silent)
from zabbix_exalate.errors import ConfigError
from zabbix_exalate.zabbix.servers import DEFAULT_PORT, Server, destinations

TIMEOUT = 1.0
# Sending starts once collecting ended and keeps to the timeout too (docs/collect.md): the whole run's bound.
BOUND = 2 * TIMEOUT
FIXED = HealthCheck.function_scoped_fixture  # the files and servers of a test serve every example alike
HOSTILE = settings(max_examples=40, deadline=None, suppress_health_check=[FIXED])


@pytest.fixture
def config(tmp_path):
    """A node that is down (nothing listens on its port), with secrets to keep out of every output."""
    (port,) = free_ports()
    return config_file(tmp_path / "zabbix_exalate.conf", f"http://127.0.0.1:{port}", user=USER, password=PASSWORD,
                       token_cache="off", timeout=f"{TIMEOUT:g}")


def send(config: str, *args: str, process: bool = False):
    runner = run_cli if process else invoke
    return runner("--config", config, "send", *args)


def to(trapper: Trapper, config: str, *args: str, process: bool = False):
    return send(config, "--server", trapper.address, "--host", "h", *args, process=process)


def sent(ran, trapper: Trapper, host: str = "h") -> dict:
    assert ran.code == 0 and ran.stderr == "", ran
    [value] = trapper.received
    assert value["host"] == host, value
    return json.loads(value["value"])


# -- class 3: the agent's configuration, Include files followed -----------------------------------------

def write(path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_include_of_a_file_a_directory_and_a_pattern_last_value_wins(config, tmp_path):
    with Trapper() as trapper, Trapper() as decoy:
        main = write(tmp_path / "zabbix_agentd.conf",
                     f"ServerActive={decoy.address}\nHostname=main\nInclude=one.conf\nInclude=dir/\n"
                     f"Include=globbed/*.conf\n")
        write(tmp_path / "one.conf", "Hostname=from-one\nInclude=nested/deeper.conf\n")
        write(tmp_path / "nested" / "deeper.conf", f"ServerActive={decoy.address}\n")
        write(tmp_path / "dir" / "a.conf", "Hostname=from-dir\n")
        write(tmp_path / "globbed" / "b.conf", f"ServerActive={trapper.address}\n")
        write(tmp_path / "globbed" / "c.txt", f"ServerActive={decoy.address}\nHostname=not-read\n")
        ran = send(config, "--agent-config", main)
        assert sent(ran, trapper, host="from-dir")["ping"] == 0
    assert decoy.received == [], "an earlier ServerActive, or a file the pattern does not match, was used"


def test_the_main_file_after_its_include_line_wins(config, tmp_path):
    with Trapper() as trapper, Trapper() as decoy:
        main = write(tmp_path / "zabbix_agentd.conf", f"Include=d/\nServerActive={trapper.address}\nHostname=last\n")
        write(tmp_path / "d" / "x.conf", f"ServerActive={decoy.address}\nHostname=first\n")
        sent(send(config, "--agent-config", main), trapper, host="last")


@pytest.mark.parametrize("include", ["tls/", "tls/*.conf", "tls/psk.conf"])
def test_tls_asked_in_an_included_file_is_refused(config, tmp_path, include):
    with Trapper() as trapper:
        main = write(tmp_path / "zabbix_agentd.conf", f"ServerActive={trapper.address}\nInclude={include}\n")
        write(tmp_path / "tls" / "psk.conf", "TLSConnect=psk\nTLSPSKIdentity=id\nTLSPSKFile=/etc/zabbix/psk\n")
        assert_contract(send(config, "--agent-config", main), 3, "TLSConnect=psk", "a file it includes")
        ran = send(config, "--server", trapper.address, "--agent-config", main)  # the Hostname would be its too
        assert_contract(ran, 3, "TLSConnect")
    assert trapper.received == [], "the document went in clear text"


@pytest.mark.parametrize("pattern, agentd_file, agent2_file", [("h?*.conf", "h?.conf", "hz.conf"),
                                                                 ("h[12]*.conf", "h[12].conf", "h2.conf")])
def test_the_agent_2_glob_and_zabbix_agentd_star_only(config, tmp_path, pattern, agentd_file, agent2_file):
    # zabbix_agentd reads ? and [ as themselves; agent 2 globs as Go does, reading both files (by name: the
    # second wins). The same lines mean two things: which one applies depends on the agent that owns the file.
    with Trapper() as trapper:
        for name in ("zabbix_agentd.conf", "zabbix_agent2.conf"):
            write(tmp_path / name, f"ServerActive={trapper.address}\nInclude=d/{pattern}\n")
        write(tmp_path / "d" / agentd_file, "Hostname=agentd-reads-me\n")
        write(tmp_path / "d" / agent2_file, "Hostname=agent2-reads-me\n")
        sent(send(config, "--agent-config", str(tmp_path / "zabbix_agent2.conf")), trapper, "agent2-reads-me")
        trapper.received.clear()
        sent(send(config, "--agent-config", str(tmp_path / "zabbix_agentd.conf")), trapper, "agentd-reads-me")


@pytest.mark.parametrize("files, words", [
    ({"a.conf": "Include=b.conf\n", "b.conf": "Include=a.conf\n"}, ["loop"]),
    ({"a.conf": "Include=zabbix_agentd.conf\n"}, ["loop"]),
    ({"a.conf": "Include=./\n"}, ["loop"]),
    ({**{f"{i}.conf": f"Include={i + 1}.conf\n" for i in range(12)}, "a.conf": "Include=0.conf\n"}, ["deep"]),
    ({"a.conf": "Include=missing.conf\n"}, ["missing.conf", "No such file"]),
    ({"a.conf": "Include=nodir/*.conf\n"}, ["nodir"]),
    ({"a.conf": "Include=*/x.conf\n"}, ["wildcard in its directory"]),
    ({"a.conf": "Include=\n"}, ["names no file"]),
])
def test_includes_the_agent_would_refuse_are_refused(config, tmp_path, files, words):
    main = write(tmp_path / "zabbix_agentd.conf", "ServerActive=127.0.0.1\nInclude=a.conf\n")
    for name, text in files.items():
        write(tmp_path / name, text)
    assert_contract(send(config, "--agent-config", main), 3, *words)


@pytest.fixture(params=["fifo", "/dev/zero", "directory", "huge", "sparse"])
def not_a_configuration(request, tmp_path):
    kind = request.param
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "/dev/zero":
        return "/dev/zero", "not a regular file"
    elif kind == "directory":
        path.mkdir()
    elif kind == "huge":
        path.write_text("# a comment\n" * 200_000)
    else:
        with open(path, "wb") as handle:
            handle.truncate(300 << 20)  # 300 MB of holes: cheap to make, not to read whole
    return str(path), "not a regular file" if kind in ("fifo", "directory") else "larger than 1 MB"


def test_a_file_that_is_no_configuration_is_refused_in_time(config, tmp_path, not_a_configuration):
    path, words = not_a_configuration
    ran = send(config, "--agent-config", path, process=True)
    assert_contract(ran, 3, words, timeout=TIMEOUT)


def test_an_included_file_that_is_no_configuration_is_refused_in_time(config, tmp_path, not_a_configuration):
    path, words = not_a_configuration
    main = write(tmp_path / "zabbix_agentd.conf", f"ServerActive=127.0.0.1:9\nInclude={path}\n")
    if os.path.isdir(path):
        # The agent reads an included directory's regular files only: a FIFO in it is passed over, not waited on.
        os.mkfifo(os.path.join(path, "in-it.conf"))
        assert_contract(send(config, "--agent-config", main, process=True), 8, "cannot connect to Zabbix at "
                        "127.0.0.1:9", timeout=TIMEOUT)
        return
    assert_contract(send(config, "--agent-config", main, process=True), 3, words, timeout=TIMEOUT)


def test_a_directory_of_many_large_files_is_no_configuration(config, tmp_path):
    for i in range(10):
        write(tmp_path / "d" / f"{i}.conf", "#" * ((1 << 20) - 100) + "\n")
    main = write(tmp_path / "zabbix_agentd.conf", "ServerActive=127.0.0.1\nInclude=d/\n")
    assert_contract(send(config, "--agent-config", main), 3, "8 MB together")


def test_without_serveractive_nothing_is_guessed(config, tmp_path):
    main = write(tmp_path / "zabbix_agentd.conf", "Server=127.0.0.1\nHostname=h\n")
    assert_contract(send(config, "--agent-config", main), 3, "no ServerActive", "--server")


# -- ServerActive's syntax, as the agent's, in the file and in --server --------------------------------

def ipv6_loopback() -> bool:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback (::1) to listen on")
def test_ipv6_in_brackets_with_a_port(config, tmp_path):
    with Trapper(host="::1") as trapper:
        assert trapper.address.startswith("[::1]:")
        sent(to(trapper, config), trapper)
        trapper.received.clear()
        main = write(tmp_path / "zabbix_agentd.conf", f"ServerActive={trapper.address}\nHostname=h\n")
        sent(send(config, "--agent-config", main), trapper)


def test_every_destination_gets_the_value_and_a_cluster_its_first_node_that_answers(config):
    (closed,) = free_ports()
    with Trapper() as first, Trapper() as second, Trapper() as standby:
        servers = f"127.0.0.1:{closed};{second.address};{standby.address}, {first.address}"
        ran = send(config, "--server", servers, "--host", "h")
        sent(ran, first), sent(ran, second)
        assert standby.received == [], "a cluster's next node gets the value only when the one before fails"
        assert f"sent to {second.address}, {first.address}" in ran.stdout


def test_a_destination_written_twice_gets_the_value_once(config):
    with Trapper() as trapper:
        sent(send(config, "--server", f"{trapper.address},{trapper.address}", "--host", "h"), trapper)
        assert trapper.connections == 1


@pytest.mark.parametrize("servers, words", [
    ("a,,b", ["empty entry"]), ("a,", ["empty entry"]), (";a", ["empty entry"]), ("", ["empty entry"]),
    (" ", ["empty entry"]),
    ("a:0", ["'a:0'", "1 to 65535"]), ("a:65536", ["'a:65536'"]), ("a:", ["'a:'"]), ("a:x1", ["'a:x1'"]),
    ("a:+80", ["'a:+80'"]), ("[::1", ["'[::1'"]), ("[::1]x", ["'[::1]x'"]), ("::1:99999", ["not an IPv6"]),
    ("a b", ["'a b'"]), ("a;b,b", ["b:10051 twice"]), ("a;a", ["a:10051 twice"]), ("x" * 5000, ["..."]),
])
def test_a_wrong_server_entry_is_named(config, servers, words):
    line = assert_contract(send(config, "--server", servers, "--host", "h"), 3, "--server", *words)
    assert len(line) < 400


def test_a_wrong_serveractive_entry_is_named_with_its_file(config, tmp_path):
    main = write(tmp_path / "zabbix_agentd.conf", "ServerActive=zabbix.example:10051,\n")
    assert_contract(send(config, "--agent-config", main), 3, f"ServerActive in {main}", "empty entry")


NAMES = st.sampled_from(["127.0.0.1", "zabbix", "zbx-proxy.example.com", "::1", "2001:db8::5", "10.0.0.7"])
PORTS = st.one_of(st.none(), st.integers(1, 65535))


def written(host: str, port, bracketed: bool, space: str) -> str:
    if ":" in host:
        text = f"[{host}]:{port}" if port else (f"[{host}]" if bracketed else host)
    else:
        text = f"{host}:{port}" if port else host
    return space + text + space


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.tuples(NAMES, PORTS, st.booleans(), st.sampled_from(["", " "])), min_size=1,
                         max_size=3, unique_by=lambda s: (s[0], s[1] or DEFAULT_PORT)), min_size=1, max_size=3))
def test_serveractive_reads_back_what_was_written(written_servers):
    expected, seen = [], set()
    for cluster in written_servers:
        nodes = tuple(Server(h, p or DEFAULT_PORT) for h, p, _, _ in cluster)
        if nodes in expected:
            continue
        if seen & set(nodes):
            return  # a server in two destinations: refused, see the entries test
        seen.update(nodes)
        expected.append(nodes)
    text = ",".join(";".join(written(*node) for node in cluster) for cluster in written_servers)
    assert destinations(text, "ServerActive") == expected


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable + "[]:;,\u00e9\u202e\x00", max_size=60))
def test_any_serveractive_text_is_read_or_refused_in_one_line(text):
    try:
        found = destinations(text, "ServerActive")
    except ConfigError as exc:
        assert "\n" not in exc.message and len(exc.message) < 400 and "ServerActive" in exc.message
        return
    assert found and all(0 < s.port < 65536 and s.host for d in found for s in d)


def test_a_wrong_serveractive_through_the_command_line(config, tmp_path):
    # The property above, at the command line, for a few texts it found interesting.
    for text in ["[", ":", "[]", "[::1]:", "a;;", "\u202e", "a:1:2", "1.2.3.4:65535:1"]:
        main = write(tmp_path / "zabbix_agentd.conf", f"ServerActive={text}\n")
        assert_contract(send(config, "--agent-config", main), 3, "ServerActive in")


# -- class 5: what a trapper answers --------------------------------------------------------------------

def success(n: int = 1) -> bytes:
    return json.dumps({"response": "success", "info": zabbix_info(n, 0)}).encode()


def zlib_bomb() -> bytes:
    """64 MB of spaces in a JSON object, zlib-compressed to under 64 KB, announcing an original of 1000 bytes."""
    packer = zlib.compressobj(9)
    spaces = b" " * (1 << 20)
    data = packer.compress(b"{") + b"".join(packer.compress(spaces) for _ in range(64)) + packer.compress(b"}")
    data += packer.flush()
    assert len(data) < 64 * 1024, len(data)
    return packet(data, flags=3, reserved=1000)


BOMB = zlib_bomb()


HOSTILE_ANSWERS = {
    "not json": (raw(packet(b"<html>busy</html>")), 9, ["not JSON"]),
    "not utf-8": (raw(packet(b"\xff\xfe{\"response\":\"success\"}")), 9, ["not UTF-8"]),
    "a list": (reply(["success"]), 9, ["JSON array"]),
    "a number": (reply(1), 9, ["JSON number"]),
    "a string": (reply("success"), 9, ["JSON string"]),
    "null": (reply(None), 9, ["JSON null"]),
    "deep nesting": (raw(packet(b"[" * 60000)), 9, ["not JSON"]),
    "a huge number": (raw(packet(b"9" * 60000)), 9, ["not JSON"]),
    "300 MB announced": (raw(packet(b"{}", length=300 << 20)), 9, ["314572800 bytes"]),
    "large-packet flag": (raw(packet(success(), flags=5)), 9, ["not the sender protocol"]),
    "not the protocol": (raw(b"HTTP/1.1 400 Bad Request\r\n\r\n"), 9, ["not the sender protocol"]),
    "closed at once": (raw(b""), 9, ["without answering"]),
    "cut short": (raw(packet(success())[:20]), 9, ["middle of its answer"]),
    "zlib bomb": (raw(BOMB), 9, ["inflates past 64 KB"]),
    "zlib garbage": (raw(packet(b"not zlib at all", flags=3, reserved=100)), 9, ["does not decompress"]),
    "zlib cut": (raw(packet(compressed(success())[13:-4], flags=3, reserved=len(success()))), 9,
                 ["ends before its end"]),
    "zlib, fine": (raw(compressed(success())), 0, []),
    "success, no info": (reply({"response": "success"}), 9, ["said success"]),
    "success, info a list": (reply({"response": "success", "info": ["processed: 1; failed: 0"]}), 9,
                             ["said success"]),
    "success, info words": (reply({"response": "success", "info": "all good\x1b[2J"}), 9, ["said success"]),
    "success, huge counts": (reply({"response": "success", "info": "processed: " + "9" * 5000 + "; failed: 0"}), 9,
                             ["said success"]),
    "success, none taken": (reply({"response": "success", "info": zabbix_info(0, 1)}), 10, ["did not accept"]),
    "refused, 60 KB": (reply({"response": "failed", "info": "no\nway " * 8000}), 10, ["refused the data: no way"]),
    "refused, 200 KB": (reply({"response": "failed", "info": "no\nway " * 40000}), 9, ["320034 bytes"]),
    "refused, no reason": (reply({"response": "failed"}), 10, ["(no reason given)"]),
    "refused, reason a number": (reply({"response": "failed", "info": 7}), 10, ["(no reason given)"]),
    "no response field": (reply({}), 10, ["refused"]),
    "redirect, not an address": (redirect("evil host:1"), 9, ['"evil host:1"', "not an address"]),
    "redirect, not a string": (reply({"response": "failed", "redirect": {"address": 5}}), 9, ["not an address"]),
    "redirect, not an object": (reply({"response": "failed", "redirect": "10.0.0.1:10051"}), 9, ["not an address"]),
    "redirect, elsewhere": (redirect("192.0.2.66:10051"), 10, ["192.0.2.66:10051", "add it to ServerActive"]),
}


@pytest.mark.parametrize("name", HOSTILE_ANSWERS)
def test_each_hostile_answer_has_its_own_clean_line(config, name):
    answer, code, words = HOSTILE_ANSWERS[name]
    with Trapper(answer=answer) as trapper:
        ran = to(trapper, config)
    if code == 0:
        assert ran.code == 0 and "accepted" in ran.stdout, ran
        return
    line = assert_contract(ran, code, trapper.address, *words, absent=["internal error"], elapsed=ran.elapsed,
                           timeout=BOUND)
    assert len(line) < 500, f"a line of {len(line)} characters"


@pytest.mark.parametrize("answer", [endless(), raw(BOMB)], ids=["300 MB sent", "zlib bomb"])
def test_a_huge_answer_is_not_read(config, answer):
    with Trapper(answer=answer) as trapper:
        ran = run_cli("--config", config, "send", "--server", trapper.address, "--host", "h", memory=True)
    assert_contract(ran, 9, timeout=BOUND)
    assert ran.peak_mb < 100, f"{ran.peak_mb:.0f} MB"


@pytest.mark.parametrize("info", [f"user {USER} password {PASSWORD}", "x" * 183 + PASSWORD + " and more"],
                         ids=["whole", "where the line is cut"])
def test_a_refusal_that_echoes_a_secret_is_masked(config, info):
    # Masked before it is cut: a secret cut short would no longer be recognised, and would show its start.
    with Trapper(answer=reply({"response": "failed", "info": info})) as trapper:
        line = assert_contract(to(trapper, config), 10, "refused the data")
    assert "***" in line


@settings(max_examples=60, deadline=None, suppress_health_check=[FIXED])
@given(st.one_of(st.binary(max_size=300),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                              lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                                  st.sampled_from(["response", "info", "redirect", "address", "x"]), inner,
                                  max_size=4)).map(lambda d: json.dumps(d).encode())),
       st.sampled_from([1, 3]))
def test_any_answer_ends_in_a_value_or_one_clean_line(config, body, flags):
    data = packet(body) if flags == 1 else compressed(body)
    with Trapper(answer=raw(data)) as trapper:
        ran = to(trapper, config)
    if ran.code == 0:
        assert "accepted" in ran.stdout and ran.stderr == "", ran
    else:
        assert_contract(ran, (8, 9, 10), absent=["internal error"], elapsed=ran.elapsed, timeout=BOUND)


# -- class 5: time --------------------------------------------------------------------------------------

def test_a_trickling_answer_keeps_the_one_deadline(config):
    with Trapper(answer=trickle(packet(success()), every=0.2)) as trapper:  # ~20 s for the whole answer
        ran = to(trapper, config, process=True)
    assert_contract(ran, 7, trapper.address, "timeout of 1 s", timeout=BOUND)


def test_a_trapper_that_never_answers(config):
    with Trapper(answer=silence()) as trapper:
        ran = to(trapper, config, process=True)
    assert_contract(ran, 7, trapper.address, timeout=BOUND)


def test_without_timeout_sending_keeps_to_the_nodes_timeout(tmp_path):
    (port,) = free_ports()
    path = config_file(tmp_path / "c.conf", f"http://127.0.0.1:{port}", user=USER, password=PASSWORD,
                       token_cache="off", timeout="1.5")
    with Trapper(answer=silence()) as trapper:
        ran = to(trapper, path, process=True)
    assert_contract(ran, 7, "timeout of 1.5 s", timeout=3.0)


def test_connection_refused(config):
    (port,) = free_ports()
    assert_contract(send(config, "--server", f"127.0.0.1:{port}", "--host", "h"), 8, "cannot connect to Zabbix",
                    f"127.0.0.1:{port}", "Connection refused")


def test_a_name_that_does_not_resolve(config):
    ran = send(config, "--server", "zabbix.invalid", "--host", "h", process=True)
    assert_contract(ran, (7, 8), "zabbix.invalid", timeout=BOUND)


def test_a_resolver_that_never_answers_keeps_the_deadline(silent_dns_namespace, config):  # noqa: F811
    ran = run_cli("--config", config, "send", "--server", "slow.invalid.example", "--host", "h",
                  prefix=["ip", "netns", "exec", silent_dns_namespace])
    assert_contract(ran, 7, "the name lookup of slow.invalid.example", timeout=BOUND)


def test_a_redirect_is_followed_only_to_a_configured_server(config):
    with Trapper() as proxy, Trapper() as elsewhere:
        with Trapper(answer=redirect(proxy.address)) as first:
            sent(send(config, "--server", f"{first.address};{proxy.address}", "--host", "h"), proxy)
            assert proxy.connections == 1, "the value went to the proxy once"
        proxy.received.clear()
        with Trapper(answer=redirect(elsewhere.address)) as first:
            ran = send(config, "--server", f"{first.address};{proxy.address}", "--host", "h")
        assert_contract(ran, 10, f"to {elsewhere.address}", "add it to ServerActive")
        assert elsewhere.received == [] and elsewhere.connections == 0 and proxy.received == []


def test_a_redirect_loop_ends(config):
    with Trapper() as a, Trapper() as b:
        a.answer, b.answer = redirect(b.address), redirect(a.address)
        ran = send(config, "--server", f"{a.address};{b.address}", "--host", "h")
    assert_contract(ran, 9, "loop")
