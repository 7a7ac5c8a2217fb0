"""Root's writes in directories other users can write (agent install, the token cache), and agent install's edge cases."""
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from zabbix_exalate.errors import ConfigError
from zabbix_exalate.exalate.auth import TokenCache
from zabbix_exalate.zabbix.agent import install
from zabbix_exalate.zabbix.agentconf import read_agent

from helpers import run_cli

RACER = "racer"
OURS = "userparameter_exalate.conf"
RACE_SECONDS = 2.5
TEXT = "UserParameter=t.x,echo 1\n"

# The attacker on agent install: every regular file in the directory it owns, but ours once in place, becomes a link
# to the decoy, hoping that root's chmod or chown follows it.
SWAP_FILES = """
import os, stat, sys, time
folder, decoy, until = sys.argv[1], sys.argv[2], time.time() + float(sys.argv[3])
while time.time() < until:
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        try:
            if name != "%s" and stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(path)
                os.symlink(decoy, path)
        except OSError:
            pass
""" % OURS

# The attacker on the token cache: the configured directory is a link, flipped between root's private directory
# (so that a check by path passes) and the attacker's own.
FLIP_LINK = """
import os, sys, time
link, private, mine, until = sys.argv[1], sys.argv[2], sys.argv[3], time.time() + float(sys.argv[4])
while time.time() < until:
    for target in (private, mine):
        try:
            os.symlink(target, link + ".new")
            os.replace(link + ".new", link)
        except OSError:
            pass
"""


def as_root():
    if os.geteuid() != 0:
        pytest.skip("these races need root (the victim) and another user (the attacker)")


@pytest.fixture(scope="module")
def racer():
    """An unprivileged user to attack with, created for these tests (and removed) if the host has none."""
    as_root()
    if not shutil.which("setpriv") or not shutil.which("useradd"):
        pytest.skip("needs setpriv and useradd")
    try:
        pwd.getpwnam(RACER)
        created = False
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", RACER], check=True)
        created = True
    yield pwd.getpwnam(RACER)
    if created:
        subprocess.run(["userdel", RACER], check=True)


@pytest.fixture
def arena(racer):
    """A throwaway tree the racer can reach (pytest's tmp_path is closed to other users), never the real /etc."""
    base = Path(tempfile.mkdtemp(prefix="zx-race-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def start_as(user, script: str, *args) -> subprocess.Popen:
    # The system Python: the racer may not be able to run the venv's (under /root).
    return subprocess.Popen(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
                             "/usr/bin/python3", "-c", script, *map(str, args)])


def racer_owned(path: Path, user, mode: int = 0o755) -> Path:
    path.mkdir()
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)
    return path


def decoy_file(base: Path) -> Path:
    """A root file standing in for /etc/shadow."""
    decoy = base / "shadow"
    decoy.write_text("root:secret\n")
    decoy.chmod(0o600)
    return decoy


def state(path: Path):
    info = path.stat()
    return stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid


# -- class 1: agent install in an include directory another user owns --------------------------------------

def test_agent_install_raced_by_the_owner_of_the_include_directory_never_touches_another_file(racer, arena):
    include = racer_owned(arena / "zabbix_agentd.d", racer)
    conf = arena / "zabbix_agentd.conf"
    conf.write_text(f"Include={include}/*.conf\n")
    config = arena / "zabbix_exalate.conf"
    config.write_text("[default]\n")  # kept: the race is on the include directory
    decoy = decoy_file(arena)
    before = state(decoy)
    agents = [read_agent(str(conf))]
    attacker = start_as(racer, SWAP_FILES, include, decoy, RACE_SECONDS)
    installs, refused = 0, 0
    try:
        time.sleep(0.2)
        while attacker.poll() is None:
            try:
                install(agents, TEXT, str(config))
            except ConfigError:
                refused += 1  # a clean refusal is allowed: the attacker removed what we wrote
            installs += 1
            assert state(decoy) == before, f"root changed the decoy after {installs} installs"
    finally:
        attacker.kill()
        attacker.wait()
    assert installs - refused > 10, (installs, refused)


def test_agent_install_is_not_stopped_or_misled_by_names_planted_in_the_include_directory(racer, arena):
    include = racer_owned(arena / "zabbix_agentd.d", racer)
    conf = arena / "zabbix_agentd.conf"
    conf.write_text(f"Include={include}/*.conf\n")
    config = arena / "zabbix_exalate.conf"
    config.write_text("[default]\n")
    decoy = decoy_file(arena)
    before = state(decoy)
    # What the racer could plant: the temporary names an install might use, and a link in place of our file.
    for name in [f"{OURS}.zabbix-exalate-{os.getpid()}", f".{OURS}.tmp", f"{OURS}.tmp"]:
        (include / name).mkdir()
    (include / OURS).symlink_to(decoy)
    install([read_agent(str(conf))], TEXT, str(config))
    assert not (include / OURS).is_symlink() and (include / OURS).read_text() == TEXT
    assert state(decoy) == before and decoy.read_text() == "root:secret\n"
    # A directory in place of our file: a clean refusal, not an internal error.
    (include / OURS).unlink()
    (include / OURS).mkdir()
    run_cli("--config", str(config), "agent", "install", "--agent-config", str(conf)).assert_failed(
        3, f"cannot write {include / OURS}")


def test_agent_install_follows_no_link_another_user_made_or_could_replace(racer, arena):
    victim = arena / "victim.d"  # stands in for /etc/ld.so.conf.d: root's, and reads every *.conf
    victim.mkdir()
    loose = racer_owned(arena / "loose", racer)
    conf = arena / "zabbix_agentd.conf"
    conf.write_text(f"Include={loose}/zabbix_agentd.d/*.conf\n")
    link_as_racer = start_as(racer, "import os, sys; os.symlink(sys.argv[1], sys.argv[2])", victim,
                             loose / "zabbix_agentd.d")
    assert link_as_racer.wait() == 0
    config = arena / "zabbix_exalate.conf"
    run_cli("--config", str(config), "agent", "install", "--agent-config", str(conf)).assert_failed(
        3, f"refusing to follow the link {loose}/zabbix_agentd.d")
    # root's own link, in the same directory: still another user's to replace.
    os.unlink(loose / "zabbix_agentd.d")
    os.symlink(victim, loose / "zabbix_agentd.d")
    run_cli("--config", str(config), "agent", "install", "--agent-config", str(conf)).assert_failed(
        3, "refusing to follow the link")
    assert os.listdir(victim) == [] and not config.exists()
    # A setup's own link, root's in a directory only root writes: followed.
    (arena / "etc").mkdir()
    os.symlink(victim, arena / "etc" / "zabbix_agentd.d")
    conf.write_text(f"Include={arena}/etc/zabbix_agentd.d/*.conf\n")
    ran = run_cli("--config", str(config), "agent", "install", "--agent-config", str(conf))
    assert ran.code == 0 and os.listdir(victim) == [OURS], ran


def test_agent_install_does_not_overwrite_a_configuration_written_meanwhile_nor_follow_a_link(tmp_path):
    as_root()
    (tmp_path / "inc").mkdir()
    conf = tmp_path / "zabbix_agentd.conf"
    conf.write_text("Include=./inc/*.conf\n")
    decoy = decoy_file(tmp_path)
    before = state(decoy)
    config = tmp_path / "zabbix_exalate.conf"
    config.symlink_to(decoy)  # planted where the example configuration goes
    ran = run_cli("--config", str(config), "agent", "install", "--agent-config", str(conf))
    assert ran.code == 0 and f"kept {config}" in ran.stdout, ran
    assert state(decoy) == before and decoy.read_text() == "root:secret\n"


def test_agent_install_refuses_a_directory_every_user_can_write(tmp_path):
    as_root()
    include = tmp_path / "inc"
    include.mkdir()
    include.chmod(0o777)
    conf = tmp_path / "zabbix_agentd.conf"
    conf.write_text(f"Include={include}/*.conf\n")
    run_cli("--config", str(tmp_path / "c.conf"), "agent", "install", "--agent-config", str(conf)).assert_failed(
        3, "every user can write it", f"chmod o-w {include}")
    assert os.listdir(include) == []


# -- class 2: the token cache's directory ----------------------------------------------------------------------

def test_token_cache_never_writes_through_a_link_flipped_by_another_user(racer, arena):
    shared = arena / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)  # a shared temporary directory, as /tmp
    private = arena / "private"
    private.mkdir(mode=0o700)
    mine = racer_owned(arena / "racer", racer, 0o777)
    link = shared / "zabbix-exalate-cache"
    link_as_racer = start_as(racer, "import os, sys; os.symlink(sys.argv[1], sys.argv[2])", private, link)
    assert link_as_racer.wait() == 0
    cache = TokenCache(str(link))
    attacker = start_as(racer, FLIP_LINK, link, private, mine, RACE_SECONDS)
    puts = 0
    try:
        time.sleep(0.2)
        while attacker.poll() is None:
            cache.put("login", f"node-{puts}", "a.b.c", time.time() + 3600)
            cache.get("login", f"node-{puts}")
            cache.drop("login", f"node-{puts - 1}")
            puts += 1
    finally:
        attacker.kill()
        attacker.wait()
    assert puts > 100
    assert os.listdir(mine) == [], f"{len(os.listdir(mine))} token files in the racer's directory"


def test_token_cache_in_a_link_or_an_open_directory_is_not_used(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(private)
    TokenCache(str(tmp_path / "link")).put("login", "x", "a.b.c", time.time() + 3600)
    assert os.listdir(private) == []
    TokenCache(str(private)).put("login", "x", "a.b.c", time.time() + 3600)
    assert TokenCache(str(private)).get("login", "x") == "a.b.c"
    private.chmod(0o770)
    assert TokenCache(str(private)).get("login", "x") is None


# -- class 11: agent install and agent check edge cases ----------------------------------------------------------

def agent_conf(tmp_path, include: str, *lines: str) -> Path:
    (tmp_path / "inc").mkdir(exist_ok=True)
    path = tmp_path / "zabbix_agentd.conf"
    path.write_text(f"Include={tmp_path}/inc/{include}\n" + "".join(f"{line}\n" for line in lines))
    return path


@pytest.mark.parametrize("pattern", ["*.cfg", "user_*", "[ab]*", "u?erparameter_exalate.conf", "*.conf.d",
                                     "[u]serparameter_exalate.conf"])
def test_install_refuses_an_include_pattern_the_agent_would_not_read_our_file_by(tmp_path, pattern):
    as_root()
    conf = agent_conf(tmp_path, pattern)
    run_cli("--config", str(tmp_path / "c.conf"), "agent", "install", "--agent-config", str(conf)).assert_failed(
        3, f"Include={tmp_path}/inc/{pattern}", f"does not match {OURS}", f"Include={tmp_path}/inc/*.conf")
    assert os.listdir(tmp_path / "inc") == []


@pytest.mark.parametrize("pattern", ["*.conf", "*", "user*", "*exalate*", "userparameter_*.conf", ""])
def test_install_writes_where_the_include_pattern_matches(tmp_path, pattern):
    as_root()
    conf = agent_conf(tmp_path, pattern)
    ran = run_cli("--config", str(tmp_path / "c.conf"), "agent", "install", "--agent-config", str(conf))
    assert ran.code == 0 and (tmp_path / "inc" / OURS).exists(), ran


def test_install_names_the_missing_include_directory(tmp_path):
    as_root()
    conf = tmp_path / "zabbix_agentd.conf"
    conf.write_text(f"Include={tmp_path}/gone/*.conf\n")
    run_cli("--config", str(tmp_path / "c.conf"), "agent", "install", "--agent-config", str(conf)).assert_failed(
        3, "does not exist", f"mkdir -p {tmp_path}/gone")


def test_a_program_path_with_a_space_is_quoted_for_the_shell(tmp_path):
    as_root()
    folder = tmp_path / "my tools"
    folder.mkdir()
    program = folder / "zabbix-exalate"
    shutil.copy(shutil.which("zabbix-exalate"), program)  # the console script: its #! names this venv's Python
    conf = agent_conf(tmp_path, "*.conf", "User=root")
    config = tmp_path / "c.conf"
    ran = subprocess.run([str(program), "--config", str(config), "agent", "install", "--agent-config", str(conf)],
                         capture_output=True, text=True)
    assert ran.returncode == 0, ran
    ran = run_cli("--config", str(config), "agent", "check", "exalate.ping[default]", "--agent-config", str(conf))
    assert "runs, as user root: '" + str(program) + "' " in ran.stdout, ran
    assert ran.code not in (126, 127), ran  # the program ran (and refused the example's placeholders)


@pytest.mark.parametrize("timeout", ["abc", "nan", "inf", "0", "31", "-1", "2.5", "1e1", "", "３"])
def test_check_refuses_an_agent_timeout_the_agent_would_not_start_with(tmp_path, timeout):
    as_root()
    conf = agent_conf(tmp_path, "*.conf", "User=root", f"Timeout={timeout}")
    (tmp_path / "inc" / "t.conf").write_text("UserParameter=t.x,echo 1\n")
    run_cli("agent", "check", "t.x", "--agent-config", str(conf)).assert_failed(3, "Timeout=", "from 1 to 30")


def special_file(tmp_path, kind: str) -> str:
    if kind == "fifo":
        os.mkfifo(tmp_path / "fifo")
        return str(tmp_path / "fifo")
    if kind == "directory":
        return str(tmp_path)
    if kind == "huge":
        with open(tmp_path / "huge.conf", "wb") as handle:
            handle.truncate(64 << 20)  # sparse: 64 MB to read, no disk
        return str(tmp_path / "huge.conf")
    return "/dev/zero"


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "directory", "huge"])
@pytest.mark.parametrize("command", [("agent", "check"), ("agent", "install")])
def test_an_agent_configuration_that_is_no_file_is_refused_at_once(tmp_path, kind, command):
    ran = run_cli("--config", str(tmp_path / "c.conf"), *command, "--agent-config", special_file(tmp_path, kind),
                  timeout=10, memory=True)
    ran.assert_failed(3, "agent configuration")
    assert ran.elapsed < 3 and ran.peak_mb < 100, ran
