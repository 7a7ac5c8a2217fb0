"""agent userparameters, install and check: the agent's files found from its own configuration."""
import grp
import os
import pwd
import stat
from pathlib import Path

import pytest

from zabbix_exalate.zabbix.agent import parse_key
from zabbix_exalate.config import load_node

from helpers import config_file, run_cli

ROOT = Path(__file__).resolve().parents[2]


def as_root():
    if os.geteuid() != 0:
        pytest.skip("agent install and check act for root (they write /etc/zabbix, become the agent's user)")


def needs_zabbix_user():
    as_root()
    try:
        pwd.getpwnam("zabbix")
    except KeyError:
        if os.environ.get("CI"):
            pytest.fail("no zabbix user: .ci/run installs the Zabbix packages")
        pytest.skip("no zabbix user on this host (install zabbix-agent)")


def agent_conf(tmp_path, *lines: str, include: str = "zabbix_agentd.conf.d/*.conf") -> Path:
    """An agent configuration with Debian's layout under tmp_path (Include relative to it, as agent 2's are)."""
    folder = tmp_path / include.split("/")[0]
    folder.mkdir(exist_ok=True)
    path = tmp_path / "zabbix_agentd.conf"
    path.write_text("# Debian's file has comments\nLogFile=/tmp/x.log\n# Include=/nowhere/*.conf\n"
                    f"Include=./{include}\n" + "".join(f"{line}\n" for line in lines))
    return path


def test_userparameters_prints_the_shipped_file():
    ran = run_cli("agent", "userparameters")
    assert ran.code == 0 and ran.stdout == (ROOT / "userparameters" / "userparameter_exalate.conf").read_text()


def test_install_finds_the_include_directory_and_writes_an_example_configuration(tmp_path):
    as_root()
    conf = agent_conf(tmp_path)
    target = tmp_path / "zabbix_exalate.conf"
    ran = run_cli("--config", str(target), "agent", "install", "--agent-config", str(conf))
    assert ran.code == 0 and ran.stderr == "", ran
    installed = tmp_path / "zabbix_agentd.conf.d" / "userparameter_exalate.conf"
    assert f"wrote {installed}" in ran.stdout and "systemctl restart zabbix-agent" in ran.stdout
    assert "UserParameter=exalate.collect[*]," in installed.read_text()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o644
    info = target.stat()
    try:
        group = grp.getgrnam("zabbix").gr_gid
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, group)
    except KeyError:
        assert stat.S_IMODE(info.st_mode) == 0o600
    # The example is a configuration the checks accept, once its placeholders are edited.
    assert load_node(str(target), "default").url == "https://jira.example.com"


def test_install_keeps_an_existing_configuration(tmp_path):
    as_root()
    conf = agent_conf(tmp_path)
    target = tmp_path / "zabbix_exalate.conf"
    config_file(target, "https://mine.example")
    ran = run_cli("--config", str(target), "agent", "install", "--agent-config", str(conf))
    assert ran.code == 0 and f"kept {target}" in ran.stdout
    assert target.read_text() == "[default]\nurl = https://mine.example\n"


def test_install_names_this_program_by_path_when_the_agent_would_not_find_it(tmp_path):
    as_root()
    conf = agent_conf(tmp_path)
    run_cli("--config", str(tmp_path / "c.conf"), "agent", "install", "--agent-config", str(conf))
    text = (tmp_path / "zabbix_agentd.conf.d" / "userparameter_exalate.conf").read_text()
    commands = [line.split(",", 1)[1] for line in text.splitlines() if line.startswith("UserParameter=")]
    program = commands[0].split()[0]
    # The test's venv is not on the agent's PATH: the full path, the same in every line.
    assert os.path.isabs(program) and program.endswith("/zabbix-exalate"), program
    assert all(c.startswith(program + " ") for c in commands)


def test_install_without_an_include_line_says_what_to_add(tmp_path):
    conf = tmp_path / "zabbix_agentd.conf"
    conf.write_text("LogFile=/tmp/x.log\n")
    run_cli("agent", "install", "--agent-config", str(conf)).assert_failed(3, "no Include line", "Include=")


@pytest.mark.parametrize("key, expected", [
    ("exalate.collect[default,]", ("exalate.collect", ["default", ""])),
    ('exalate.sync_requests[ prod ,"a, b"]', ("exalate.sync_requests", ["prod ", "a, b"])),
    ("agent.ping", ("agent.ping", [])),
])
def test_keys_are_read_as_the_agent_reads_them(key, expected):
    assert parse_key(key) == expected


def test_check_runs_the_key_as_the_agent_s_user_and_shows_what_it_stores(tmp_path):
    needs_zabbix_user()
    conf = agent_conf(tmp_path, "Timeout=3")
    (tmp_path / "zabbix_agentd.conf.d" / "t.conf").write_text(
        "UserParameter=t.who[*],echo \"$(id -un) $1 $2 $$HOME\"; echo 'and stderr' >&2; exit 4\n")
    ran = run_cli("agent", "check", "t.who[a,b c]", "--agent-config", str(conf))
    assert ran.code == 4, ran
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("t.who[a,b c] runs, as user zabbix: echo \"$(id -un) a b c $HOME\"")
    home = pwd.getpwnam("zabbix").pw_dir
    assert lines[-2:] == [f"zabbix a b c {home}", "and stderr"], "stdout and stderr together, as the agent stores"


def test_check_refuses_what_the_agent_refuses(tmp_path):
    needs_zabbix_user()
    conf = agent_conf(tmp_path)
    (tmp_path / "zabbix_agentd.conf.d" / "t.conf").write_text("UserParameter=t.x[*],echo $1\n")
    run_cli("agent", "check", "t.x[a;b]", "--agent-config", str(conf)).assert_failed(3, "UnsafeUserParameters")
    run_cli("agent", "check", "t.nope", "--agent-config", str(conf)).assert_failed(3, "no UserParameter for t.nope")


def test_check_names_the_agent_s_timeout(tmp_path):
    needs_zabbix_user()
    conf = agent_conf(tmp_path, "Timeout=1")
    (tmp_path / "zabbix_agentd.conf.d" / "t.conf").write_text("UserParameter=t.slow,sleep 5\n")
    ran = run_cli("agent", "check", "t.slow", "--agent-config", str(conf))
    assert ran.code == 7 and "Timeout of 1 s" in ran.stderr, ran


def test_check_reads_the_included_files_as_the_agent_does(tmp_path):
    # The agent follows an Include into a directory and on into the files that directory's files include; the
    # Timeout it reads there replaces the default of 3 s. agent check must find the same UserParameter and Timeout.
    needs_zabbix_user()
    conf = agent_conf(tmp_path)
    nested = tmp_path / "more"
    nested.mkdir()
    (nested / "deep.conf").write_text("UserParameter=t.deep,sleep 5\n")
    (tmp_path / "zabbix_agentd.conf.d" / "t.conf").write_text(f"Include={nested}/\nTimeout=1\n")
    ran = run_cli("agent", "check", "t.deep", "--agent-config", str(conf))
    assert ran.code == 7 and "t.deep runs, as user zabbix: sleep 5" in ran.stdout, ran
    assert "Timeout of 1 s" in ran.stderr, ran


def test_check_shows_that_the_agent_cannot_run_a_program_under_root_s_home(tmp_path):
    # The mistake install.md warns about: this test's venv lives on Python under /root, which the zabbix
    # user cannot execute. Root's own run would pass; the agent's check shows the truth.
    needs_zabbix_user()
    conf = agent_conf(tmp_path)
    run_cli("--config", str(tmp_path / "c.conf"), "agent", "install", "--agent-config", str(conf))
    ran = run_cli("agent", "check", "exalate.ping[default]", "--agent-config", str(conf))
    python = os.path.realpath(os.path.join(os.path.dirname(os.environ["PATH"].split(os.pathsep)[0]), "bin",
                                           "python"))
    if os.access(python, os.X_OK) and not python.startswith("/root"):
        pytest.skip("this test's Python is usable by the zabbix user: nothing to show")
    assert ran.code == 126 and "exit 126: the user zabbix cannot execute the program" in ran.stdout, ran
