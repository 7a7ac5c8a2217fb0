"""The one list of what zabbix-exalate measures, with every fact about each value (field, key, triggers...)."""
from dataclasses import dataclass
from typing import Optional, Tuple

API_ROOT = "/rest/issuehub/"  # every endpoint's path is under {url}/rest/issuehub/

# Which credentials and base URL a request uses (see auth.py).
MONITOR = "monitor"    # the customer monitor, 4.0/cmonitor (may live on monitor_url)
QUEUE = "queue"        # the node's 4.0 API (Jira basic auth or the JWT)
RELATION = "relation"  # the 2.4 per-connection API (the JWT, else basic auth)

# The kinds of trigger the templates give a metric (zabbix/content.py builds them).
ERRORS_REPORTED = "errors reported"  # the node's error count stands above a threshold
BACKLOG = "backlog"                  # a connection's queue stands high, or its reads stop (removed connection)
FAILED = "failed"                    # a connection holds failed syncs


@dataclass(frozen=True)
class Alarm:
    """The triggers a metric gets in the templates, and what they need to say."""
    kind: str        # ERRORS_REPORTED, BACKLOG or FAILED
    limit: str = ""  # FAILED: the macro holding how many failures a connection may hold


@dataclass(frozen=True)
class Metric:
    command: str                 # CLI command, e.g. "sync-requests"
    path: str                    # under {url}/rest/issuehub/; {connection} is one path segment
    api: str                     # MONITOR, QUEUE or RELATION
    field: Optional[str]         # a number in a JSON object; None: count the JSON array's elements
    name: str                    # what the number is, in the operator's words: the one name of the value in item,
                                 # trigger and graph names, `status`, the demo and the docs ("Syncs to send")
    description: str             # what it means when it grows (the template's item description)
    reason_field: Optional[str] = None  # for --reason: which field of each element holds it
    message_field: Optional[str] = None  # a failure's message in each element (with reason_field)
    in_flight: bool = False             # a queue of work in flight: a head that stays put is a stuck queue
    alarm: Optional[Alarm] = None       # its triggers in the templates
    component: str = "queue"            # its component tag in the templates
    column: Tuple[str, str] = ("", "")  # a connection's queue: the two words of its name that head its column in
                                        # `status` (what happens to them, what they are: "to send", "syncs")
    kind: str = ""                      # a queue of failures: "sync" or "attachment", the {#KIND} of its reason items

    @property
    def heading(self) -> Tuple[str, str]:
        """Its column's two header lines in `status`, the second of at most 6 characters ("attachments" is "attach"):
        the table keeps 20 columns for a connection's name within 80."""
        group, kind = self.column
        return group, kind[:6]

    @property
    def per_connection(self) -> bool:
        return "{connection}" in self.path

    @property
    def field_name(self) -> str:
        """Its field in the document `collect` prints, e.g. "sync_requests"."""
        return self.command.replace("-", "_")

    @property
    def oldest_field(self) -> str:
        """The document's field for the smallest syncEventId waiting in this queue, e.g. "sync_requests_oldest"."""
        return self.field_name + "_oldest"

    @property
    def reasons_field(self) -> Optional[str]:
        """A queue of failures: the document's field counting them by reason, e.g. "error_reasons"."""
        return self.field_name.replace("_responses", "_reasons") if self.reason_field else None

    @property
    def last_field(self) -> Optional[str]:
        """A queue of failures: the document's field holding the newest one, e.g. "last_error"."""
        return "last_" + self.field_name.replace("_responses", "") if self.reason_field else None

    @property
    def newest_field(self) -> Optional[str]:
        """A queue of failures: its newest ones as a list, for `status --connection` (never in collect's document)."""
        return self.field_name + "_newest" if self.reason_field else None

    @property
    def key(self) -> str:
        """The Zabbix item key (without parameters)."""
        return "exalate." + self.field_name


METRICS = (
    Metric("errors", "4.0/cmonitor", MONITOR, "numErrors",
           "Errors reported",
           "Errors the node reports (numErrors of the customer monitor). Each one holds up the issues it "
           "concerns until someone resolves it in the Exalate console (Errors tab).",
           alarm=Alarm(ERRORS_REPORTED), component="errors"),
    Metric("outgoing", "4.0/syncevents?limit=0", QUEUE, "total",
           "Outgoing syncs queued",
           "Sync events of all connections waiting to be sent to the other side (the Sync Queue's outgoing "
           "sync). It grows when a remote node is down or slow, or a connection is deactivated."),
    Metric("incoming", "4.0/syncrequests?limit=0", QUEUE, "total",
           "Incoming syncs queued",
           "Sync requests from the other sides waiting to be applied on this node (the Sync Queue's incoming "
           "sync). It grows when this node cannot keep up or its incoming sync rules fail."),
    Metric("sync-requests", "2.4/relations/{connection}/syncevents/syncrequests", RELATION, None,
           "Syncs to send",
           "Changes of this connection waiting for the other side to fetch them (syncevents/syncrequests): the "
           "connection's backlog. A queue that stays high means the other side has stopped picking changes up.",
           in_flight=True, alarm=Alarm(BACKLOG), column=("to send", "syncs")),
    Metric("blob-requests", "2.4/relations/{connection}/syncevents/blobrequests", RELATION, None,
           "Attachments to send",
           "Attachments of this connection waiting for the other side to fetch them (syncevents/blobrequests).",
           in_flight=True, column=("to send", "attachments")),
    Metric("sync-responses", "2.4/relations/{connection}/syncrequests/syncresponses", RELATION, None,
           "Sync answers to process",
           "Answers from the other side to the changes this node sent, not yet processed here "
           "(syncrequests/syncresponses).",
           in_flight=True, column=("answers", "syncs")),
    Metric("blob-responses", "2.4/relations/{connection}/syncrequests/blobresponses", RELATION, None,
           "Attachment answers to process",
           "Answers from the other side to the attachments this node sent, not yet processed here "
           "(syncrequests/blobresponses).",
           in_flight=True, column=("answers", "attachments")),
    Metric("error-responses", "2.4/relations/{connection}/syncrequests/errorresponses", RELATION, None,
           "Failed syncs",
           "Changes the other side failed to apply (syncrequests/errorresponses, with errorReason and message): "
           "those issues stay out of sync until the error is resolved.", reason_field="errorReason",
           message_field="message", alarm=Alarm(FAILED, "{$EXALATE.FAILED.MAX.WARN}"), column=("failed", "syncs"),
           kind="sync"),
    Metric("blob-error-responses", "2.4/relations/{connection}/syncrequests/bloberrorresponses", RELATION, None,
           "Failed attachments",
           "Attachments the other side failed to store (syncrequests/bloberrorresponses, with blobErrorReason, "
           "e.g. CHECKSUM_MISMATCH).", reason_field="blobErrorReason", message_field="errorMessage",
           alarm=Alarm(FAILED, "{$EXALATE.BLOB.FAILED.MAX.WARN}"), column=("failed", "attachments"),
           kind="attachment"),
)

BY_COMMAND = {m.command: m for m in METRICS}
NODE_METRICS = tuple(m for m in METRICS if not m.per_connection)
CONNECTION_METRICS = tuple(m for m in METRICS if m.per_connection)

# The items that are not a number read from one endpoint.
PING_KEY = "exalate.ping"
DISCOVERY_KEY = "exalate.discovery"
COLLECT_KEY = "exalate.collect"              # the whole node in one JSON document (collect, send)
RESPONSE_TIME_KEY = "exalate.response_time"  # seconds the ping request took
CONNECTION_COUNT_KEY = "exalate.connections"
CONNECTION_LIST_KEY = "exalate.connection_list"  # the node's connections: what each status item reads (one poll)
STATUS_KEY = "exalate.status"                # per connection, a code from CONNECTION_STATUSES
REASON_DISCOVERY_KEY = "exalate.reasons"     # the failure reasons of every connection (one-poll templates)
REASON_KEY = "exalate.failed_by_reason"      # per connection, kind and reason: how many failures carry it
CREDENTIALS_KEY = "exalate.credentials"      # whether the node took our credentials, a code from CREDENTIAL_STATES

# The document's field saying whether the node took our credentials, as the answer to the ping request showed:
# "refused" (it answered 401 or 403, to that request or to logging in), "accepted" (it answered the request), or
# "unknown" (no answer: the node is down, unreachable, failing or slow); and the number the templates store for each.
CREDENTIALS_FIELD = "credentials"
REFUSED, ACCEPTED, UNKNOWN_CREDENTIALS = "refused", "accepted", "unknown"
CREDENTIAL_STATES = ((REFUSED, 0), (ACCEPTED, 1), (UNKNOWN_CREDENTIALS, 2))

# The document's field holding the connection list, and the ping_check that makes reading it the ping.
CONNECTIONS_FIELD = "connections"
PING_DISCOVER = "discover"

# Connection statuses as the node reports them, and the number the templates store for each.
# CONFIGURED: named in the configuration file, the node does not list it; 0: any other status.
# REMOVED is ours, not the node's: its queues answer the documented 400 "Connection `X` not found. Seems like it was
# removed on the Destination side." (collect), or the node no longer lists a connection discovery found (templates).
CONFIGURED = "CONFIGURED"
REMOVED = "REMOVED"
CONNECTION_STATUSES = (("ACTIVE", 1), ("DEACTIVATED", 2), ("ERROR", 3), ("PENDING", 4), (CONFIGURED, 5),
                       (REMOVED, 6))
OTHER_STATUS = 0
CONNECTIONS_PATH = "4.0/connections"
AUTHENTICATE_PATH = "4.0/authenticate"

# The key `send` pushes the collect document to, and the key of the trapper template's master item. It has no
# parameters: the Zabbix server does not expand macros in a trapper item's key when it matches incoming values
# (measured on 6.0.14: a value sent as exalate.collect[default] was refused by the item
# exalate.collect[{$EXALATE.NODE}]), and the Zabbix host already says which node it is.
SEND_KEY = COLLECT_KEY
