"""The failures a check can end in, each with its documented exit status."""
from .names import printable


class CheckError(Exception):
    """The check cannot tell: the message says why, in words for the operator."""

    exit_code = 1
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
    0: "success: the value is on stdout",
    1: "internal error (a bug: please report it with the message)",
    2: "usage error (unknown command or option)",
    **{cls.exit_code: cls.label for cls in (ConfigError, AuthError, ConnectionNotFound, ServerError,
                                             CheckTimeout, Unreachable, BadResponse, ZabbixAPIError)},
}
