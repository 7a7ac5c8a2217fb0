"""The configuration file as operators write it: comments, mistakes, odd files; never a value in an error."""
import os

import pytest

from helpers import PASSWORD, SECRET, assert_contract, config_file, run_cli

HUNTER = "hunter2-is-my-password"


def write(tmp_path, text: str) -> str:
    return config_file(tmp_path / "zabbix_exalate.conf", text=text)


def test_inline_comments_are_comments(cli, sim, tmp_path):
    # The README's own example: an inline comment after the user name used to become part of it.
    text = (f"[default]   ; the Jira node\nurl = {sim.url}   # production\nuser = monitor    ; Jira basic auth\n"
            f"password = {PASSWORD}\njwt_secret = {SECRET} ; from the connection\ntoken_cache = off\n")
    ran = cli("outgoing", config_path=write(tmp_path, text))
    assert (ran.code, ran.stdout, ran.stderr) == (0, "20\n", "")
    assert cli("sync-requests", "AllContent", config_path=write(tmp_path, text)).stdout == "1\n"


def test_a_value_may_hold_hash_and_semicolon_without_a_space_before(cli, sim, scenario, write_config):
    sim.simulator.update(credentials={**scenario["credentials"], "password": "pa;ss#word"})
    ran = cli("outgoing", config_path=write_config(password="pa;ss#word"))
    assert ran.stdout == "20\n", ran


@pytest.mark.parametrize("text, words", [
    (f"[default]\nurl = http://x\npassword {HUNTER}\n", ("line 3", "not 'key = value'")),
    (f"password = {HUNTER}\n[default]\n", ("line 1", "before the first [section]")),
    (f"[default]\npassword = {HUNTER}\npassword = {HUNTER}x\n", ("'password' is set twice", "line 3")),
    (f"[default]\nurl = http://x\n[default]\npassword = {HUNTER}\n", ("[default] appears twice", "line 3")),
])
def test_parse_errors_name_the_line_never_the_value(cli, tmp_path, text, words):
    ran = cli("errors", config_path=write(tmp_path, text))
    ran.assert_failed(3, "not valid INI", *words)
    assert HUNTER not in ran.stderr


@pytest.mark.parametrize("url", [f"jira.example.com:{HUNTER}@x", f"ftp://admin:{HUNTER}@x", f"http://admin:{HUNTER}@x",
                                 f"//admin:{HUNTER}@x/jira"])
def test_a_url_with_credentials_is_never_echoed(cli, tmp_path, url):
    ran = cli("errors", config_path=write(tmp_path, f"[default]\nurl = {url}\npassword = p\nuser = u\n"))
    assert ran.code == 3 and "url" in ran.stderr, ran
    assert HUNTER not in ran.stderr


@pytest.mark.parametrize("url", ["http://[::1", "http://x:port/", "http://", "http:///path", "https://a b/"])
def test_an_invalid_url_is_a_configuration_error(cli, tmp_path, url):
    cli("errors", config_path=write(tmp_path, f"[default]\nurl = {url}\nuser = u\npassword = p\n")).assert_failed(
        3, "the url in [default]")


@pytest.mark.parametrize("key, value", [("timeout", "inf"), ("timeout", "1e300"), ("timeout", "nan"),
                                        ("timeout", "-1"), ("jwt_ttl", "inf"), ("jwt_ttl", "1e30")])
def test_absurd_durations_are_configuration_errors(cli, write_config, key, value):
    cli("errors", config_path=write_config(**{key: value})).assert_failed(3, key)


def test_the_path_is_a_directory(cli, tmp_path):
    cli("errors", config_path=str(tmp_path)).assert_failed(3, "is a directory")


def test_a_fifo_is_refused_at_once(tmp_path):
    # Opened, a FIFO without a writer would block for ever: refused at once, within the budget (as the agent runs it).
    fifo = tmp_path / "fifo.conf"
    os.mkfifo(fifo)
    assert_contract(run_cli("--config", str(fifo), "--timeout", "1", "errors"), 3, "not a regular file", timeout=1)


def test_a_device_is_refused(cli):
    cli("errors", config_path="/dev/zero").assert_failed(3, "not a regular file")


def test_a_huge_file_is_refused_without_reading_it(cli, tmp_path):
    big = tmp_path / "big.conf"
    with open(big, "wb") as handle:
        handle.truncate(1 << 30)  # sparse: 1 GB announced, nothing on disk
    big.chmod(0o600)
    cli("errors", config_path=str(big)).assert_failed(3, "1024 MB", "right file")


def test_a_file_that_is_not_utf8_names_the_line(cli, tmp_path):
    path = tmp_path / "latin1.conf"
    path.write_bytes(b"[default]\nurl = http://x\npassword = caf\xe9\n")
    path.chmod(0o600)
    cli("errors", config_path=str(path)).assert_failed(3, "not UTF-8", "line 3")


def test_a_zabbix_section_with_a_bad_timeout(tmp_path):
    path = config_file(tmp_path / "zabbix_exalate.conf", "http://127.0.0.1:9", section="zabbix", token="t0ken-value",
                       timeout=0)
    run_cli("--config", path, "zabbix", "import-template", env={"ZABBIX_URL": "", "ZABBIX_TOKEN": ""}).assert_failed(
        3, "timeout in [zabbix]")


def test_zabbix_url_with_credentials_is_refused_and_not_echoed(tmp_path):
    ran = run_cli("--config", "/nonexistent", "zabbix", "import-template",
                  env={"ZABBIX_URL": f"http://admin:{HUNTER}@127.0.0.1:9", "ZABBIX_TOKEN": "t" * 64})
    ran.assert_failed(3, "ZABBIX_URL", "holds credentials")
    assert HUNTER not in ran.stderr
