"""The Exalate REST API as this project reads it: one call per endpoint, each answer streamed into what we need."""
from typing import Callable, List, Optional

import requests

from ..config import NodeConfig
from ..errors import AuthError, BadResponse, ConfigError, ConnectionNotFound, one_line, printable
from ..masking import Masker
from ..metrics import API_ROOT, CONFIGURED, CONNECTIONS_PATH, MONITOR, QUEUE, Metric
from ..runtime import Deadline
from . import jsonstream
from .auth import Authenticator, TokenCache
from .names import LongName, connection_name, is_tagged_key, key_form, listed_connections
from ..httperrors import host, show
from .transport import Body, Transport, text


MAX_MESSAGE = 250  # a failure's message as the document carries it: room for the issue, the reason and the sentence
MAX_ISSUE = 64     # an issue key ("AC-113"), a URN at most


class Node:
    """One configured Exalate node. Constructing it does no I/O."""

    def __init__(self, cfg: NodeConfig, deadline: Deadline, session: Optional[requests.Session] = None,
                 cache: Optional[TokenCache] = None, trace: Optional[Callable[[str], None]] = None,
                 masker: Optional[Masker] = None):
        self.cfg = cfg
        self.deadline = deadline
        self.masker = masker or Masker()
        self.transport = Transport(cfg, deadline, self.masker, session, trace)
        self.auth = Authenticator(cfg, cache or TokenCache.for_config(cfg), self.transport, self.masker)

    def value(self, metric: Metric, connection: Optional[str] = None, reason: Optional[str] = None) -> int:
        url = self.url_for(metric, connection)
        what = f"the answer of {show(url)}"
        with self._get(url, metric.api, connection) as response:
            body = Body(response, self.deadline)
            if metric.field:
                return jsonstream.read_number(body, metric.field, what)
            return jsonstream.count_elements(body, what, metric.reason_field, reason)

    def queue(self, metric: Metric, connection: str, keep: int = 1) -> jsonstream.Queue:
        """One pass over a connection's queue: its size, oldest event and, for a queue of failures, the failures
        by reason and the keep newest, their texts masked and on one line."""
        url = self.url_for(metric, connection)
        with self._get(url, metric.api, connection) as response:
            found = jsonstream.read_queue(Body(response, self.deadline), f"the answer of {show(url)}",
                                          metric.reason_field, metric.message_field, keep)
        reasons: dict = {}
        for reason, count in found.reasons.items():  # a reason could echo a secret, as a message could
            shown = self._text(reason, jsonstream.MAX_REASON_LENGTH)
            reasons[shown] = reasons.get(shown, 0) + count
        found.reasons = reasons
        for failure in found.newest:
            failure.issue = self._text(failure.issue, MAX_ISSUE)
            failure.reason = self._text(failure.reason, jsonstream.MAX_REASON_LENGTH)
            failure.message = self._text(failure.message, MAX_MESSAGE)
        return found

    def _text(self, text: Optional[str], width: int) -> Optional[str]:
        return None if text is None else one_line(self.masker.mask(text), width)

    def connections(self) -> List[dict]:
        """The node's connections (see names.listed_connections); the configured list if it cannot say."""
        url = self.cfg.url + API_ROOT + CONNECTIONS_PATH
        try:
            response = self._get(url, QUEUE, None, missing_ok=True)
        except AuthError:
            # Credentials that may read the queues but not the list (a Cloud customer monitor login):
            # the configured list, when there is one, is what the operator meant.
            if self.cfg.connections:
                return self._configured_connections(url)
            raise
        with response:
            if response.status_code == 404:
                return self._configured_connections(url)
            found, total = jsonstream.read_connections(Body(response, self.deadline), f"the answer of {show(url)}")
        if total is not None and total > len(found):
            # A partial list would let Zabbix delete the items of the connections left out, once the
            # discovery lifetime passes: the configured list, else no list at all, which keeps every item.
            if self.cfg.connections:
                return self._configured_connections(url)
            raise BadResponse(f"{show(url)} lists {len(found)} of the node's {total} connections (a paged "
                              f"answer, which zabbix-exalate cannot follow yet): list them in [{self.cfg.name}] of "
                              f"{self.cfg.source} as connections = one name a line, and report this")
        return listed_connections(c for c in found if c["name"])  # a nameless entry cannot be queried: skip it

    def connection_named(self, arg: str) -> str:
        """The connection's exact name from what a check was given: its name, its key form, or a tagged key, which
        only the node's list (the connection that has it) can turn into a name."""
        if is_tagged_key(arg):
            for c in self.connections():
                if c["key"] == arg:
                    return c["name"]
        return connection_name(arg)

    def url_for(self, metric: Metric, connection: Optional[str] = None) -> str:
        if metric.api == MONITOR and self.cfg.monitor_url:
            return self.cfg.monitor_url
        path = metric.path
        if metric.per_connection:
            if not connection:
                raise ConfigError(f"{metric.command} needs a connection name")
            if isinstance(connection, LongName):
                raise BadResponse(connection.reason)
            if any(part in (".", "..") for part in connection.split("/")):
                # HTTP clients and servers resolve "." and ".." (even as %2E) as navigation, and a proxy that
                # decodes %2F turns "x/../.." into it: the request would reach another endpoint (another
                # connection's queue). Refuse rather than count something else.
                raise ConfigError(f"a connection named '{printable(connection)}' cannot be checked: a '.' or "
                                  f"'..' between slashes reads as path navigation in URLs, not as a name; rename "
                                  f"the connection in Exalate")
            try:
                # One percent-encoded segment: "/" and ".." in a name never leave the connection's path.
                path = path.replace("{connection}", key_form(connection))
            except UnicodeEncodeError:  # bytes that are not UTF-8 in the argument (surrogate escapes)
                raise ConfigError("the connection name is not UTF-8 text: give the name as discovery prints "
                                  "it ({#CONNECTION.KEY})") from None
        return self.cfg.url + API_ROOT + path

    def _configured_connections(self, url) -> List[dict]:
        if not self.cfg.connections:
            raise BadResponse(f"this node does not list its connections ({show(url)} answered HTTP 404): "
                              f"list them in [{self.cfg.name}] of {self.cfg.source} as connections = "
                              f"one name a line")
        return listed_connections({"name": n, "status": CONFIGURED} for n in self.cfg.connections)

    def _get(self, url: str, api: str, connection: Optional[str], missing_ok: bool = False) -> requests.Response:
        credential = self.auth.credential(api)
        response = self.transport.send("GET", url, credential)
        if response.status_code in (401, 403) and credential.renewable:
            # A cached token may have expired or been revoked early: get a fresh one, once.
            response.close()
            self.auth.forget(credential)
            credential = self.auth.credential(api)
            response = self.transport.send("GET", url, credential)
        try:
            if not (response.status_code == 404 and missing_ok):
                self._raise_for_status(response, url, credential, connection)
        except BaseException:
            response.close()
            raise
        return response

    def _raise_for_status(self, response, url, credential, connection) -> None:
        if response.status_code == 400 and connection is not None:
            said = text(response)
            if "not found" in said.lower():
                raise ConnectionNotFound(
                    f"connection '{printable(connection)}' not found on {host(url)}: it may have been removed "
                    f"or renamed on the other side; check the connection in Exalate and rediscover")
            raise BadResponse(f"{show(url)} refused the request (HTTP 400): "
                              f"{self.transport.outside(said) or '(empty body)'}")
        self.transport.raise_for_status(response, url, credential)
