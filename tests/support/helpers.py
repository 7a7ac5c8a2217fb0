"""One helper per job for every kind of test: the test secrets and the one check that none leaks, the error
contract, a free port, our configuration file, and running zabbix-exalate (in this process or as the agent
runs it) or any other program.

Only the standard library is imported at module level: zabbix_stack.py imports free_ports from here when any
python3 runs it as a script, without the project's dependencies.
"""
import base64
import json
import re
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import unicodedata
from typing import List, Optional, Sequence, Tuple, Union
from urllib.parse import quote, quote_plus

SLACK = 0.5  # what the product promises: a run ends within its timeout + this, counted from its start

# -- the test secrets and the node they open --------------------------------------------------------

USER = "monitor"
SECRET = "s3cret-shared-jwt-key"
PASSWORD = "pa55-word-for-basic"
LOGIN_PASSWORD = "login-pa55phrase"

BASE_SCENARIO = {
    "credentials": {"jwt_secret": SECRET, "user": USER, "password": PASSWORD,
                    "login_password": LOGIN_PASSWORD, "token_ttl": 600},
    "errors": 7,
    "outgoing": 20,
    "incoming": 3,
    "connections": [
        {"name": "AllContent", "id": 154, "status": "ACTIVE", "remote": "https://remote.example",
         "queues": {"sync-requests": 1, "blob-requests": 2, "sync-responses": 3, "blob-responses": 4,
                    "error-responses": 5, "blob-error-responses": 6},
         "error_reasons": ["NO_ISSUE_TO_CONNECT_TO", "SCRIPT_ERROR"]},
        {"name": "Gone", "id": 9, "status": "ACTIVE", "removed": True},
    ],
}

# The documented endpoints (README's table), under {url}/rest/issuehub/, written out by hand: what a check
# must request, whatever metrics.py says.
ENDPOINTS = {
    "errors": "4.0/cmonitor",
    "outgoing": "4.0/syncevents?limit=0",
    "incoming": "4.0/syncrequests?limit=0",
    "sync-requests": "2.4/relations/{}/syncevents/syncrequests",
    "blob-requests": "2.4/relations/{}/syncevents/blobrequests",
    "sync-responses": "2.4/relations/{}/syncrequests/syncresponses",
    "blob-responses": "2.4/relations/{}/syncrequests/blobresponses",
    "error-responses": "2.4/relations/{}/syncrequests/errorresponses",
    "blob-error-responses": "2.4/relations/{}/syncrequests/bloberrorresponses",
}


# -- secrets ------------------------------------------------------------------------------------

# Zabbix expands a user macro written in a description (a trigger's, at least): where the macro's value is meant it
# reads right ("for 30m", "--node default", "the section default"); anywhere else a description names a macro without
# its braces (EXALATE.DEACTIVATED.CONTROL), or "set {$M} to 0" would read "set 1 to 0".
VALUE_USES = ("for ", "--node ", "section ")
MACRO_IN_TEXT = re.compile(r'\{\$[A-Z0-9_.]+(?::"(?:[^"\\]|\\.)*"|:[^}]*)?\}')
MACRO_NAME = re.compile(r"(?<![{$\w.])EXALATE(?:\.[A-Z0-9_]+)+")


def misplaced_macros(text: str) -> List[str]:
    """The macros of a description written where their name, not their value, is meant."""
    return [m.group() for m in MACRO_IN_TEXT.finditer(text) if not text[:m.start()].endswith(VALUE_USES)]


def macro_names(text: str) -> List[str]:
    """The macros a description names (without braces: EXALATE.LLD.LIFETIME)."""
    return MACRO_NAME.findall(text)


def secret_forms(*secrets: str, basic: Sequence[Tuple[str, str]] = ()) -> List[str]:
    """Every form a secret may take on its way out: as is, JSON-escaped (either way of escaping non-ASCII),
    URL-encoded (path and form style), and the base64 of user:password as a Basic header carries it."""
    forms = []
    for secret in secrets:
        if not secret:
            continue
        forms += [secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
                  quote(secret, safe=""), quote(secret), quote_plus(secret)]
    for user, password in basic:
        for encoding in ("latin-1", "utf-8"):
            try:
                pair = f"{user}:{password}".encode(encoding)
            except UnicodeEncodeError:
                continue
            forms.append(base64.b64encode(pair).decode())
    return sorted({f for f in forms if len(f) >= 6})


CUT = 12  # a secret cut short (a message truncated before masking) still gives this much of it away
TEST_SECRETS = secret_forms(SECRET, PASSWORD, LOGIN_PASSWORD, basic=[(USER, PASSWORD)])


def leaked(text: str, forms: Sequence[str]) -> List[str]:
    """The forms found in text, whole or cut short (the first CUT characters of a longer form)."""
    found = []
    for form in forms:
        if form in text:
            found.append(form)
        elif len(form) >= CUT + 4 and form[:CUT] in text:
            found.append(f"{form[:CUT]}... (cut short)")
    return sorted(set(found))


def assert_no_secret(*texts: str, secrets: Sequence[str] = ()) -> None:
    """No test secret (and none of secrets), in any form it takes on the wire, whole or cut short, in texts."""
    forms = TEST_SECRETS + secret_forms(*secrets) if secrets else TEST_SECRETS
    for text in texts:
        found = leaked(text, forms)
        assert not found, f"secret forms {found!r} printed: {text[:2000]!r}"


# -- the error contract -------------------------------------------------------------------------

def control_characters(line: str) -> List[str]:
    """Characters that break a line or move the cursor: C0/C1 controls, DEL, the Unicode line separators."""
    return [c for c in line if unicodedata.category(c) in ("Cc", "Zl", "Zp")]


def assert_one_clean_line(stderr: str, context) -> str:
    """Exactly one line on stderr, newline-terminated, with no other control character; returns it."""
    assert stderr.endswith("\n") and stderr.count("\n") == 1, f"not exactly one stderr line: {context}"
    line = stderr[:-1]
    assert not control_characters(line), f"control characters {control_characters(line)!r} in: {context}"
    assert "Traceback" not in line, context
    assert line.strip(), f"an empty stderr line: {context}"
    return line


def assert_contract(ran: "Run", code: Union[int, Sequence[int]], *words: str, elapsed: Optional[float] = None,
                    timeout: Optional[float] = None, secrets: Sequence[str] = (), stdout: Optional[str] = "",
                    absent: Sequence[str] = ()) -> str:
    """A failing command as the agent must see it (issue 10); returns the stderr line.

    code: the documented exit status (or the statuses a test allows); words: what the line must say;
    absent: what it must not say; elapsed/timeout: the run's wall time (default: the one the runner measured)
    and the configured timeout; secrets: more forms to look for than the test secrets' (see secret_forms);
    stdout: what stdout must be ("" for a check, "0\\n" for ping)."""
    codes = (code,) if isinstance(code, int) else tuple(code)
    elapsed = ran.elapsed if elapsed is None else elapsed
    context = f"{ran}" + (f" after {elapsed:.2f} s" if elapsed is not None else "")
    assert ran.code in codes, f"exit {ran.code}, expected {' or '.join(map(str, codes))}: {context}"
    if stdout is not None:
        assert ran.stdout == stdout, f"stdout should be {stdout!r}: {context}"
    line = assert_one_clean_line(ran.stderr, context)
    for word in words:
        assert word in line, f"{word!r} missing from the line: {context}"
    for word in absent:
        assert word not in line, f"{word!r} should not be in the line: {context}"
    found = leaked(ran.stdout + ran.stderr, TEST_SECRETS + list(secrets))
    assert not found, f"secret forms {found!r} printed: {context}"
    if timeout is not None:
        assert elapsed is not None, "a timeout to keep, but no wall time measured"
        assert elapsed <= timeout + SLACK, f"{elapsed:.2f} s for a timeout of {timeout:g} s: {context}"
    return line


# -- ports ---------------------------------------------------------------------------------------

def free_ports(count: int = 1, within: Optional[Tuple[int, int]] = None, preferred: Sequence[int] = ()) -> List[int]:
    """count different TCP ports free on 127.0.0.1 now: the kernel's choice, or random ones in within (low,
    high), where preferred[i] comes first for the i-th port when it is free. A process may still take one
    before the caller binds it: start the server on it and retry when it cannot bind."""
    held, ports = [], []
    try:
        for i in range(count):
            if within is None:
                candidates = [0]
            else:
                low, high = within
                wanted = [preferred[i]] if i < len(preferred) and preferred[i] and low <= preferred[i] <= high else []
                candidates = wanted + [random.randint(low, high) for _ in range(100)]
            for port in candidates:
                sock = socket.socket()
                # Like the servers themselves, ignore a last run's connections in TIME_WAIT.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    sock.close()
                    continue
                held.append(sock)  # kept bound so that the next port cannot be the same
                ports.append(sock.getsockname()[1])
                break
            else:
                raise OSError(f"found no free port between {within[0]} and {within[1]}")
    finally:
        for sock in held:
            sock.close()
    return ports


# -- our configuration file ---------------------------------------------------------------------

def config_file(path, url: Optional[str] = None, section: str = "default", mode: int = 0o600,
                 text: Optional[str] = None, **keys) -> str:
    """Our INI file at path (mode 0600 unless told): text as it is, or one [section] with url and keys. A key
    set to None is left out; a value with a line break is written as INI's continuation lines, so that it
    reaches the program with the line break in it. Returns the path."""
    if text is None:
        lines = [f"[{section}]"]
        for key, value in {"url": url, **keys}.items():
            if value is None:
                continue
            first, *rest = str(value).split("\n")
            lines.append(f"{key} = {first}")
            lines.extend(f"    {more}" for more in rest)
        text = "\n".join(lines) + "\n"
    path = str(path)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    os.chmod(path, mode)
    return path


# -- running programs ----------------------------------------------------------------------------

class Run:
    """What a user sees from one run: exit status, stdout, stderr; and its wall time, and for a process run
    with memory=True its own peak memory."""

    def __init__(self, code: int, stdout: str, stderr: str, elapsed: Optional[float] = None,
                 peak_mb: Optional[float] = None):
        self.code, self.stdout, self.stderr = code, stdout, stderr
        self.elapsed, self.peak_mb = elapsed, peak_mb

    def __repr__(self):
        return f"Run(code={self.code}, stdout={self.stdout!r}, stderr={self.stderr!r})"

    def assert_failed(self, code: int, *words: str) -> str:
        """The error contract: nothing on stdout, one clean line on stderr naming the cause, the class's status,
        no secret."""
        return assert_contract(self, code, *words)


# On Linux a child's peak memory counts what it held between fork and exec: forked from a large
# process (pytest, the simulator), even curl would seem large. So a small Python process forks
# the program and reports its peak; the floor this leaves is that launcher's size (about 10 MB).
_LAUNCHER = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss} {time.perf_counter() - started}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_process(argv: Sequence[Union[str, bytes]], env: Optional[dict] = None, timeout: float = 60,
                memory: bool = False, inherit: bool = True) -> Run:
    """Any program as a separate process: its exit status, stdout and stderr (which must be UTF-8), its wall
    time, and with memory=True its own peak memory. env adds to this process's environment, or with
    inherit=False is the whole of it. Arguments may be bytes (what a shell can pass that is not UTF-8)."""
    environment = {**os.environ, **(env or {})} if inherit else dict(env or {})
    if not memory:
        started = time.monotonic()
        proc = subprocess.run(list(argv), capture_output=True, timeout=timeout, env=environment)
        elapsed, peak_mb = time.monotonic() - started, None
    else:
        with tempfile.NamedTemporaryFile("r") as report:
            proc = subprocess.run([sys.executable, "-c", _LAUNCHER, report.name, *argv], capture_output=True,
                                  timeout=timeout, env=environment)
            peak_kb, elapsed = (float(x) for x in report.read().split())  # the launcher's start-up not counted
        peak_mb = peak_kb / 1024
    return Run(proc.returncode, _utf8(proc.stdout, "stdout"), _utf8(proc.stderr, "stderr"), elapsed, peak_mb)


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AssertionError(f"{what} is not UTF-8: {data!r}") from None


def run_cli(*args: Union[str, bytes], env: Optional[dict] = None, timeout: float = 60, memory: bool = False,
            prefix: Sequence[str] = (), secrets: Sequence[str] = ()) -> Run:
    """The installed zabbix-exalate as a separate process, as the Zabbix agent runs it (after prefix, e.g.
    ip netns exec NAME); the run fails the test if it prints a test secret or one of secrets."""
    ran = run_process([*prefix, "zabbix-exalate", *args], env=env, timeout=timeout, memory=memory)
    assert_no_secret(ran.stdout, ran.stderr, secrets=secrets)
    return ran


def cli_runner():
    """click's in-process runner with stderr kept apart from stdout, as the agent sees them, on every click
    setup.cfg allows: before 8.2 the runner mixes stderr into stdout unless told not to (mix_stderr=False),
    and 8.2 removed that argument along with the mixing."""
    import inspect

    from click.testing import CliRunner
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


def invoke(*args: str, env: Optional[dict] = None, secrets: Sequence[str] = ()) -> Run:
    """zabbix-exalate in this process, through click's runner; the run fails the test if it prints a test
    secret or one of secrets. Its deadline counts from this call, as a process's counts from its start."""
    from zabbix_exalate.cli import main
    started = time.monotonic()
    result = cli_runner().invoke(main, list(args), env=env, catch_exceptions=False)
    ran = Run(result.exit_code, result.stdout, result.stderr, time.monotonic() - started)
    assert_no_secret(ran.stdout, ran.stderr, secrets=secrets)
    return ran


def python_command() -> List[str]:
    return [sys.executable, "-m", "zabbix_exalate"]


def require_binary(name: str) -> None:
    """Skip where a needed program is missing, except in CI, where that is a failure."""
    import shutil

    import pytest
    if not shutil.which(name):
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed: .ci/run must install it")
        pytest.skip(f"{name} is not installed")
