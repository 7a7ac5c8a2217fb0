"""Issue 10, class 1: a resolver that never answers must not carry a check past its timeout.

getaddrinfo blocks in C, where no alarm interrupts it: the check would end when the resolver gives up
(10 s and more), after the agent has killed it. The test builds a network namespace whose resolv.conf
points at a UDP server on its own loopback that reads queries and never answers, and runs the check in
it, as the agent would run it, against a name only that resolver could answer.

It needs root and iproute2 (ip netns); elsewhere it is skipped, saying why.
"""
import os
import shutil
import subprocess
import sys
import time

import pytest

from helpers import SLACK, assert_contract, assert_one_clean_line, config_file, run_cli, run_process

TIMEOUT = 1.0
NETNS_ETC = "/etc/netns"

# Binds 127.0.0.1:53 (UDP and TCP, as a resolver may retry over TCP), says so, then swallows every query.
SILENT_RESOLVER = r"""
import socket, sys, threading
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 53))
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("127.0.0.1", 53))
tcp.listen(16)
held = []
def accept():
    while True:
        held.append(tcp.accept()[0])  # keep it open, never answer
threading.Thread(target=accept, daemon=True).start()
print("ready", flush=True)
while True:
    udp.recvfrom(4096)
"""


@pytest.fixture
def silent_dns_namespace():
    """The name of a network namespace whose only resolver never answers; removed afterwards, always."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("creating a network namespace (ip netns add) needs root")
    if not shutil.which("ip"):
        pytest.skip("iproute2's ip is not installed: cannot create a network namespace")
    name = f"zxdns-{os.getpid()}-{time.monotonic_ns() % 100000}"
    added = run_process(["ip", "netns", "add", name], timeout=30)
    if added.code != 0:
        pytest.skip(f"cannot create a network namespace here (ip netns add: {added.stderr.strip()})")
    created_etc = not os.path.isdir(NETNS_ETC)
    etc = os.path.join(NETNS_ETC, name)
    resolver = None
    try:
        os.makedirs(etc)
        with open(os.path.join(etc, "resolv.conf"), "w") as handle:
            # The C library's own patience: 5 s a try, two tries, before it gives up.
            handle.write("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n")
        up = run_process(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], timeout=30)
        assert up.code == 0, up.stderr
        resolver = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", SILENT_RESOLVER],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = resolver.stdout.readline()
        assert line.strip() == "ready", f"the silent resolver did not start: {line!r} {resolver.stderr.read()}"
        yield name
    finally:
        if resolver is not None:
            resolver.kill()
            resolver.wait(10)
        run_process(["ip", "netns", "del", name], timeout=30)
        shutil.rmtree(etc, ignore_errors=True)
        if created_etc:
            try:
                os.rmdir(NETNS_ETC)
            except OSError:
                pass


@pytest.fixture
def config(tmp_path):
    return config_file(tmp_path / "zabbix_exalate.conf", "http://slow.invalid.example:8080", user="monitor",
                       password="dns-test-pa55word", token_cache="off")


def run_in(namespace: str, *args: str):
    """The check run in the namespace, as the agent would run it there."""
    return run_cli(*args, prefix=["ip", "netns", "exec", namespace], secrets=["dns-test-pa55word"])


def test_the_resolver_in_the_namespace_really_never_answers(silent_dns_namespace):
    # The trap itself: without it the check would not be tested at all.
    probe = ("import socket, time\nt = time.monotonic()\ntry:\n    socket.getaddrinfo('slow.invalid.example', 8080)\n"
             "except OSError:\n    pass\nprint(time.monotonic() - t)\n")
    proc = subprocess.Popen(["ip", "netns", "exec", silent_dns_namespace, sys.executable, "-c", probe],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=3)
        pytest.fail(f"the name resolved or failed within {float(out or 0):.2f} s: the resolver is not silent")
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_a_resolver_that_never_answers_times_out_within_the_timeout(silent_dns_namespace, config):
    ran = run_in(silent_dns_namespace, "--config", config, "--timeout", f"{TIMEOUT:g}", "outgoing")
    assert_contract(ran, 7, timeout=TIMEOUT)


def test_ping_with_a_resolver_that_never_answers_prints_0_within_the_timeout(silent_dns_namespace, config):
    ran = run_in(silent_dns_namespace, "--config", config, "--timeout", f"{TIMEOUT:g}", "ping")
    assert_contract(ran, 0, stdout="0\n", timeout=TIMEOUT)


def test_collect_with_a_resolver_that_never_answers_reports_within_the_timeout(silent_dns_namespace, config):
    import json
    ran = run_in(silent_dns_namespace, "--config", config, "--timeout", f"{TIMEOUT:g}", "collect")
    assert ran.elapsed <= TIMEOUT + SLACK, f"{ran.elapsed:.2f} s for a timeout of {TIMEOUT:g} s: {ran}"
    assert (ran.code, ran.stderr) == (0, ""), ran
    assert_one_clean_line(ran.stdout, ran)
    assert json.loads(ran.stdout)["ping"] == 0, ran
