"""The failures a command can end in, each with its documented exit status: the only place they are numbered."""

# The statuses that are not one of the failures below.
SUCCESS = 0
INTERNAL = 1      # a bug of ours
USAGE = 2         # click's own for an unknown command or option
INTERRUPTED = 130  # Ctrl-C, as a shell reports a process ended by SIGINT


def printable(text: str) -> str:
    """The text fit for a one-line message: control characters shown as escapes."""
    if text.isprintable():  # nearly always: the check runs in C, the loop below in Python
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def one_line(text: str, width: int) -> str:
    """A text a server chose (a failure's message), as one line of at most width characters: line breaks and
    tabs become spaces, other control characters go. Mask secrets before: a secret cut short is not masked."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() or c.isspace() else "" for c in text)
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


class CheckError(Exception):
    """The check cannot tell: the message says why, in words for the operator."""

    exit_code = INTERNAL
    label = "failed"

    def __init__(self, message: str):
        message = printable(message)  # one line whatever a server or a file put in it: \r, \n, \x85...
        super().__init__(message)
        self.message = message


class ConfigError(CheckError):
    exit_code = 3
    label = "configuration"


class AuthError(CheckError):
    exit_code = 4
    label = "authentication refused"


class ConnectionNotFound(CheckError):
    exit_code = 5
    label = "connection not found"


class ServerError(CheckError):
    exit_code = 6
    label = "server error"


class CheckTimeout(CheckError):
    exit_code = 7
    label = "timeout"


class Unreachable(CheckError):
    exit_code = 8
    label = "unreachable"


class BadResponse(CheckError):
    exit_code = 9
    label = "unexpected response"


class ZabbixAPIError(CheckError):
    exit_code = 10
    label = "Zabbix refused or failed the request (API, or the trapper for send)"


# Exit statuses in one table, for --help and the docs (and a test that keeps them true).
EXIT_CODES = {
    SUCCESS: "success: the value is on stdout",
    INTERNAL: "internal error (a bug: please report it with the message)",
    USAGE: "usage error (unknown command or option)",
    **{cls.exit_code: cls.label for cls in (ConfigError, AuthError, ConnectionNotFound, ServerError,
                                             CheckTimeout, Unreachable, BadResponse, ZabbixAPIError)},
}
