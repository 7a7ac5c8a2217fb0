"""Benchmark: how long one poll of a node takes through the HTTP template's JavaScript, beside `collect`.

    python3 tests/bench/bench_http.py [--rounds N] [--connections 10,50,200] [--latency 0,0.02,0.1]

For each node size and each node latency (seconds the simulator waits before every answer, as a distant or busy
node does), each round polls the simulated node two ways, in turns so that machine noise hits both alike:

  HTTP template   the Script item's JavaScript in Zabbix's own engine (zabbix_js), as the server runs it: its
                  requests one after another (4 + 6 x connections);
  collect         `zabbix-exalate collect` as the agent template runs it: max_connections (4) requests at once.

Both documents are checked equal (response_time aside) before a figure is kept. Figures are the median wall time
of the rounds and the ratio HTTP / collect; the seconds per request of the HTTP template say how long a node of
any size takes at that latency. A poll must end within the Script item's timeout (60 s at most): the last column
says how many connections fit in 30 s.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from zabbix_exalate.simulation.simulator import Simulator, SimulatorServer  # noqa: E402
from zabbix_exalate.zabbix.httpscript import http_script  # noqa: E402

USER, PASSWORD = "bench", "bench-password"
SECRET = "bench-shared-secret-of-32-bytes!!"


def scenario(connections: int, latency: float) -> dict:
    return {"credentials": {"jwt_secret": SECRET, "user": USER, "password": PASSWORD},
            "errors": 3, "outgoing": 12, "incoming": 5,
            "faults": [{"path": "*", "delay": latency}] if latency else [],
            "connections": [{"name": f"Jira Prod <> ADO {i:02d}", "id": 100 + i, "payload_bytes": 64,
                             "queues": {"sync-requests": i % 5, "error-responses": i % 3}}
                            for i in range(connections)]}


def run_http(url: str, directory: str) -> tuple:
    params = os.path.join(directory, "params.json")
    with open(params, "w") as handle:
        json.dump({"url": url, "jwt_secret": SECRET, "user": USER, "password": PASSWORD, "timeout": "60s"}, handle)
    started = time.perf_counter()
    ran = subprocess.run(["zabbix_js", "-s", os.path.join(directory, "script.js"), "-i", params, "-t", "60"],
                         capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if ran.returncode != 0:
        sys.exit(f"zabbix_js failed: {ran.stdout}{ran.stderr}")
    return elapsed, json.loads(ran.stdout)


def run_collect(url: str, directory: str) -> tuple:
    config = os.path.join(directory, "zabbix_exalate.conf")
    with open(config, "w") as handle:
        handle.write(f"[default]\nurl = {url}\njwt_secret = {SECRET}\nuser = {USER}\npassword = {PASSWORD}\n"
                     f"token_cache = off\ntimeout = 60\n")
    os.chmod(config, 0o600)
    started = time.perf_counter()
    ran = subprocess.run([sys.executable, "-m", "zabbix_exalate", "--config", config, "collect"], capture_output=True,
                         text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if ran.returncode != 0:
        sys.exit(f"collect failed: {ran.stderr}")
    return elapsed, json.loads(ran.stdout)


def same(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "response_time"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", default="10,50,200")
    parser.add_argument("--latency", default="0,0.02,0.1")
    args = parser.parse_args()
    print(f"{'connections':>11} {'latency':>8} {'requests':>8} {'HTTP (s)':>9} {'collect (s)':>11} "
          f"{'HTTP/collect':>12} {'s/request':>9} {'fit in 30 s':>11}")
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "script.js"), "w", encoding="utf-8") as handle:
            handle.write(http_script())
        for connections in (int(n) for n in args.connections.split(",")):
            for latency in (float(s) for s in args.latency.split(",")):
                if connections * 6 * latency > 50:
                    continue  # past the Script item's longest timeout
                with SimulatorServer(Simulator(scenario(connections, latency))) as server:
                    http, collect, ratios = [], [], []
                    for round_ in range(args.rounds):
                        ways = (run_http, run_collect) if round_ % 2 == 0 else (run_collect, run_http)
                        found = {way: way(server.url, directory) for way in ways}
                        (h, hdoc), (c, cdoc) = found[run_http], found[run_collect]
                        if same(hdoc) != same(cdoc):
                            sys.exit(f"the documents differ ({connections} connections, latency {latency})")
                        http.append(h)
                        collect.append(c)
                        ratios.append(h / c)
                requests = 4 + 6 * connections
                per_request = statistics.median(http) / requests
                print(f"{connections:>11} {latency:>8g} {requests:>8} {statistics.median(http):>9.2f} "
                      f"{statistics.median(collect):>11.2f} {statistics.median(ratios):>12.2f} "
                      f"{per_request:>9.4f} {int((30 / per_request - 4) / 6):>11}", flush=True)


if __name__ == "__main__":
    main()
