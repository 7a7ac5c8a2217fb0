"""Benchmark: the CPU one request of `collect` costs, layer by layer, in one thread of one process, side by side.

    python3 tests/bench/bench_requests.py [--rounds N] [--connections N]

The simulator (in its own process) serves a node like bench_collect.py's; each round fetches every queue URL of
every connection (6 a connection) over one kept-alive connection, in turn with:

  http.client             the standard library alone: the floor of any Python client;
  urllib3                 what requests sends through;
  requests adapter        requests' HTTPAdapter.send with a prepared request (no session: no cookies kept);
  requests prepared       Request.prepare with the session's headers and cookies, then Session.send: how collect
                          sends since issue 18, the environment read once;
  requests session        Session.request, the environment read once (trust_env off);
  ... trusting the env    Session.request reading proxy variables and ~/.netrc at every request (before issue 18);
  zabbix-exalate          Node.queue: the request, the streaming parse, the bounds, the masking, as collect reads.

Figures are CPU milliseconds a request (process time: user + system of this process, the simulator apart), the
median (and min) over the rounds; the layers run in an order that changes from round to round.
"""
import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time
from urllib.parse import urlsplit

import requests
import urllib3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_collect import NODE, curl_urls, node_url, scenario, start_simulator  # noqa: E402

from zabbix_exalate.config import load_node  # noqa: E402
from zabbix_exalate.exalate.api import Node  # noqa: E402
from zabbix_exalate.exalate.transport import pooled_session  # noqa: E402
from zabbix_exalate.masking import Masker  # noqa: E402
from zabbix_exalate.metrics import CONNECTION_METRICS  # noqa: E402
from zabbix_exalate.runtime import Deadline  # noqa: E402


def ways(config: str, urls: list):
    cfg = load_node(config, NODE)
    masker = Masker()
    cfg.register(masker)
    node = Node(cfg, Deadline(3600), session=pooled_session(1), masker=masker)
    credential = node.auth.credential(CONNECTION_METRICS[0].api)  # what Node.queue sends: basic auth here
    headers = {"Accept": "application/json", "User-Agent": "zabbix-exalate", **credential.headers}
    auth = credential.basic
    # The two clients below requests get the header requests makes of auth, made once.
    basic = {"Authorization": requests.auth._basic_auth_str(*auth)} if auth else {}
    names = [c["name"] for c in node.connections()]
    parts = urlsplit(urls[0])
    plain = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    pool = urllib3.PoolManager()
    adapter = requests.adapters.HTTPAdapter()
    trusting, not_trusting = requests.Session(), requests.Session()
    not_trusting.trust_env = False
    # What the environment says once (REQUESTS_CA_BUNDLE...), as collect's Transport reads it: the same for all.
    verify = trusting.merge_environment_settings(urls[0], {}, None, None, None)["verify"]

    def with_http_client():
        for url in urls:
            plain.request("GET", url[len(f"{parts.scheme}://{parts.netloc}"):], headers={**headers, **basic})
            plain.getresponse().read()

    def with_urllib3():
        for url in urls:
            pool.request("GET", url, headers={**headers, **basic}, timeout=30).data

    def with_adapter():
        for url in urls:
            with adapter.send(requests.Request("GET", url, headers=headers, auth=auth).prepare(), stream=True,
                              timeout=(30, 30), verify=verify) as response:
                response.content

    def with_session(session):
        def run():
            for url in urls:
                with session.request("GET", url, headers=headers, auth=auth, timeout=(30, 30), stream=True,
                                     allow_redirects=False, verify=verify) as response:
                    response.content
        return run

    def with_prepared():
        for url in urls:
            merged = requests.structures.CaseInsensitiveDict(not_trusting.headers)
            merged.update(headers)
            prepared = requests.Request("GET", url, headers=merged, auth=auth, cookies=not_trusting.cookies).prepare()
            with not_trusting.send(prepared, timeout=(30, 30), stream=True, allow_redirects=False,
                                   verify=verify) as response:
                response.content

    def with_node():
        for name in names:
            for metric in CONNECTION_METRICS:
                node.queue(metric, name)

    return {"http.client": with_http_client, "urllib3": with_urllib3, "requests adapter": with_adapter,
            "requests prepared": with_prepared, "requests session": with_session(not_trusting),
            "requests session trusting the env": with_session(trusting), "zabbix-exalate Node.queue": with_node}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    scene = scenario(args.connections)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp
        simulator, config = start_simulator(tmp, scene)
        try:
            urls = curl_urls(node_url(config), scene)[1]
            layers = ways(config, urls)
            for run in layers.values():  # warm-up: connections made, code paths taken once
                run()
            cpu = {name: [] for name in layers}
            names = list(layers)
            for n in range(args.rounds):
                for name in names[n % len(names):] + names[:n % len(names)]:
                    started = time.process_time()
                    layers[name]()
                    cpu[name].append((time.process_time() - started) * 1000 / len(urls))
        finally:
            simulator.terminate()
            simulator.wait(10)
    print(f"CPU per request, {len(urls)} requests a round over one kept-alive connection, median (min) of "
          f"{args.rounds} rounds; load average {os.getloadavg()[0]:.1f}")
    floor = statistics.median(cpu["http.client"])
    for name, values in cpu.items():
        median = statistics.median(values)
        print(f"  {name:<36}{median:>7.3f} ms ({min(values):.3f})  {median / floor:5.1f}x http.client   "
              f"{median * len(urls) / 1000:.3f} CPU-s a poll")


if __name__ == "__main__":
    main()
