"""Benchmark: what one check costs against curl and a bare requests one-liner, run side by side.

    python tests/bench/bench_checks.py [--rounds N] [--mb SIZE]

Each round runs the three clients one after the other against the same simulator, so machine
noise hits all three alike; the figures are medians over the rounds, and the ratios are what
to compare between machines. Two cases: a small answer (the cost of starting a check, which the
agent pays on every poll) and a backlog of SIZE megabytes (streaming speed and peak memory).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

from zabbix_exalate.simulation.simulator import Simulator, SimulatorServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
from helpers import run_process  # noqa: E402

USER, PASSWORD = "bench", "bench-password"


def run(argv, env=None):
    """Wall seconds and peak memory (MB) of one process; stops the benchmark if it fails."""
    ran = run_process(argv, env, timeout=300, memory=True)
    if ran.code:
        sys.exit(f"benchmark client failed: {argv[0]}: {ran.stderr.strip()}")
    return ran.elapsed, ran.peak_mb, ran.stdout.strip()


def clients(url, path, config, netrc, stream):
    """The three ways to make the same authenticated request, credentials kept off the command line."""
    env = {**os.environ, "BENCH_USER": USER, "BENCH_PASSWORD": PASSWORD}
    read = ("n=0\nfor c in r.iter_content(65536): n+=len(c)\n" if stream else "r.content\n")
    one_liner = ("import os,requests\nr=requests.get(os.environ['BENCH_URL'],stream=True,"
                 "auth=(os.environ['BENCH_USER'],os.environ['BENCH_PASSWORD']),"
                 "headers={'X-exalate-jwt':os.environ['BENCH_JWT']})\n" + read)
    return {
        "curl": (["curl", "-sf", "--netrc-file", netrc, "-o", "/dev/null", url + path], env),
        "requests one-liner": ([sys.executable, "-c", one_liner], {**env, "BENCH_URL": url + path}),
        "zabbix-exalate": ([sys.executable, "-m", "zabbix_exalate", "--config", config, "--timeout", "120"]
                           + stream, env),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()

    count = args.mb * 10  # elements of 100 kB
    scenario = {"credentials": {"jwt_secret": "bench-shared-secret-of-32-bytes!!", "user": USER,
                                "password": PASSWORD},
                "outgoing": 20,
                "connections": [{"name": "Backlog", "queues": {"sync-requests": count}, "payload_bytes": 100_000}]}
    with SimulatorServer(Simulator(scenario)) as server, tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "bench.conf")
        server.write_config(config)
        netrc = os.path.join(tmp, "netrc")
        with open(netrc, "w") as handle:
            handle.write(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
        os.chmod(netrc, 0o600)
        import jwt
        os.environ["BENCH_JWT"] = jwt.encode({"iss": "EXALATE", "user": "", "exp": int(time.time()) + 3600},
                                             scenario["credentials"]["jwt_secret"], algorithm="HS256")
        cases = [
            ("small answer: outgoing", "/rest/issuehub/4.0/syncevents?limit=0", ["outgoing"], args.rounds),
            (f"{args.mb} MB backlog: sync-requests", "/rest/issuehub/2.4/relations/Backlog/syncevents/syncrequests",
             ["sync-requests", "Backlog"], max(3, args.rounds // 5)),
        ]
        run(clients(server.url, cases[0][1], config, netrc, cases[0][2])["zabbix-exalate"][0])  # warm the token cache
        for title, path, check, rounds in cases:
            runs = clients(server.url, path, config, netrc, check)
            times = {name: [] for name in runs}
            memory = {name: [] for name in runs}
            for _ in range(rounds):
                for name, (argv, env) in runs.items():
                    elapsed, peak, _ = run(argv, env)
                    times[name].append(elapsed)
                    memory[name].append(peak)
            print(f"\n{title} ({rounds} rounds, medians)")
            print(f"  {'client':<20}{'seconds':>9}{'peak MB':>9}{'x curl':>8}{'x one-liner':>13}")
            curl, liner = statistics.median(times["curl"]), statistics.median(times["requests one-liner"])
            for name in runs:
                t = statistics.median(times[name])
                print(f"  {name:<20}{t:>9.3f}{max(memory[name]):>9.1f}{t / curl:>8.2f}{t / liner:>13.2f}")


if __name__ == "__main__":
    main()
