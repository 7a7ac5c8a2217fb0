"""Credentials: minted, ready-made and logged-in JWTs, their cache and renewal, and file permissions."""
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest

from helpers import LOGIN_PASSWORD, SECRET, run_cli


def cache_files(config):
    directory = os.path.join(os.path.dirname(config), "token-cache")
    return sorted(os.path.join(directory, f) for f in os.listdir(directory))


def test_minted_token_is_cached_privately_and_reused(cli, config, sim):
    assert cli("sync-requests", "AllContent").stdout == "1\n"
    [path] = cache_files(config)
    assert os.stat(path).st_mode & 0o777 == 0o600
    first = open(path).read()
    assert cli("blob-requests", "AllContent").stdout == "2\n"
    assert open(path).read() == first
    assert SECRET not in first


# pyjwt >= 2.11 warns of a short HMAC key (InsecureKeyLengthWarning, a UserWarning); older pyjwt has no such class,
# so the filter names the message, not jwt.warnings, which pytest would fail to import there.
@pytest.mark.filterwarnings("ignore:The HMAC key is:UserWarning")
def test_minted_token_with_milliseconds_and_own_claims(write_config, cli):
    path = write_config(jwt_exp_unit="milliseconds", jwt_user="zabbix", jwt_claims='{"aud": "exalate"}',
                        user=None, password=None)
    assert cli("sync-requests", "AllContent", config_path=path).stdout == "1\n"
    [cached] = cache_files(path)
    claims = jwt.decode(json.load(open(cached))["token"], SECRET, algorithms=["HS256"], audience="exalate")
    assert claims["exp"] > 10 ** 12 and claims["user"] == "zabbix" and claims["iss"] == "EXALATE"


def test_header_name_is_settable(write_config, cli, sim):
    sim.simulator.update(credentials={"jwt_secret": SECRET, "jwt_header": "X-Other-Jwt"})
    path = write_config(jwt_header="X-Other-Jwt", user=None, password=None)
    assert cli("outgoing", config_path=path).stdout == "20\n"


def test_ready_made_token(write_config, cli):
    token = jwt.encode({"iss": "EXALATE", "user": "x", "exp": int(time.time()) + 60},
                       SECRET + "-padding-to-32-bytes", algorithm="HS256")
    path = write_config(token=token, jwt_secret=None, user=None, password=None)
    # Signed with another key: the node refuses it, and the message names the token key, not the token.
    ran = cli("sync-requests", "AllContent", config_path=path)
    ran.assert_failed(4, "the token from the token key")
    assert token not in ran.stderr


@pytest.fixture
def login_config(write_config):
    return write_config(login_password=LOGIN_PASSWORD, jwt_secret=None, user=None, password=None)


def test_login_token_is_cached_until_it_expires(cli, login_config, sim):
    assert cli("sync-requests", "AllContent", config_path=login_config).stdout == "1\n"
    assert cli("blob-requests", "AllContent", config_path=login_config).stdout == "2\n"
    assert sim.simulator.logins == 1
    [path] = cache_files(login_config)
    entry = json.load(open(path))
    entry["expires"] = time.time() - 1
    with open(path, "w") as handle:
        json.dump(entry, handle)
    assert cli("sync-responses", "AllContent", config_path=login_config).stdout == "3\n"
    assert sim.simulator.logins == 2


def test_revoked_token_is_renewed_once(cli, login_config, sim):
    assert cli("outgoing", config_path=login_config).stdout == "20\n"
    sim.simulator.revoke_tokens()
    assert cli("outgoing", config_path=login_config).stdout == "20\n"
    assert sim.simulator.logins == 2


def test_a_node_refusing_every_fresh_token_is_logged_in_to_once_per_run(cli, login_config, sim):
    # An outage of the 2.4 API's authentication: retrying with a new login per queue would cost one login
    # per connection (600 connections took 20 s).
    sim.simulator.update(connections=[{"name": f"C{i}", "id": i, "status": "ACTIVE"} for i in range(20)],
                         faults=[{"path": "2.4/*", "status": 401}])
    ran = cli("collect", config_path=login_config)
    assert ran.code == 0 and json.loads(ran.stdout)["connections"][0]["failures"], ran
    assert sim.simulator.logins == 1
    # A token from the cache, refused: maybe expired, so renewed once, and that fresh one is not renewed.
    cli("sync-requests", "C1", config_path=login_config).assert_failed(4, "HTTP 401")
    assert sim.simulator.logins == 2


@pytest.mark.parametrize("where", ["header", "body"])
def test_login_token_from_header_or_body(cli, login_config, sim, where):
    sim.simulator.update(credentials={**sim.simulator.scenario["credentials"], "login_token_in": where})
    assert cli("incoming", config_path=login_config).stdout == "3\n"


def test_wrong_login_password(write_config, cli):
    path = write_config(login_password="wrong-login", jwt_secret=None, user=None, password=None)
    cli("incoming", config_path=path).assert_failed(4, "logging in", "login_password")


def test_twenty_checks_started_at_once_share_the_cache(login_config, sim):
    with ThreadPoolExecutor(20) as pool:  # twenty processes, each started as soon as its thread is
        runs = list(pool.map(lambda _: run_cli("--config", login_config, "--timeout", "20", "sync-requests",
                                               "AllContent"), range(20)))
    for ran in runs:
        assert (ran.code, ran.stdout, ran.stderr) == (0, "1\n", "")
    files = cache_files(login_config)
    assert len(files) == 1, files  # no temporary file left behind
    assert os.stat(files[0]).st_mode & 0o777 == 0o600
    json.load(open(files[0]))  # whole, not a torn write
    logins = sim.simulator.logins
    assert 1 <= logins <= 20
    assert run_cli("--config", login_config, "outgoing").code == 0
    assert sim.simulator.logins == logins  # the cached token serves the next check


def test_cache_can_be_turned_off(write_config, cli):
    path = write_config(token_cache="off")
    assert cli("sync-requests", "AllContent", config_path=path).stdout == "1\n"
    assert cache_files(path) == []


def test_cache_directory_open_to_others_is_not_used(write_config, cli, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    path = write_config(token_cache=str(shared))
    assert cli("sync-requests", "AllContent", config_path=path).stdout == "1\n"
    assert os.listdir(shared) == []


@pytest.mark.parametrize("mode", [0o644, 0o606, 0o602])
def test_secrets_open_to_every_user_are_refused(write_config, cli, mode):
    # A warning would reach Zabbix as part of the value: every item unsupported, discovery broken.
    cli("outgoing", config_path=write_config(mode=mode)).assert_failed(
        3, "every user on this host can read it", "chmod 600")


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_private_file_gives_no_warning(write_config, cli, mode):
    ran = cli("outgoing", config_path=write_config(mode=mode))
    assert (ran.code, ran.stdout, ran.stderr) == (0, "20\n", "")
