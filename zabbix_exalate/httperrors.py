"""The one mapping of a failed HTTP request to our errors, for the node and the Zabbix API alike."""
from urllib.parse import urlsplit

import requests

from .errors import CheckError, CheckTimeout, ConfigError, Unreachable


def request_failure(exc: Exception, url: str, seconds: float, proxy: str, what: str, where: str) -> CheckError:
    """The CheckError for a request to url (what: "the node") that raised exc; where names the url's setting."""
    if isinstance(exc, requests.exceptions.Timeout):
        return CheckTimeout(f"{show(url)} did not answer within the timeout of {seconds:g} s: is {what} overloaded? "
                            f"raise timeout if it is just slow")
    if isinstance(exc, requests.exceptions.SSLError):
        return Unreachable(f"TLS with {host(url)} failed ({_tls_reason(exc)}): if {what} uses a private CA, "
                           f"set verify = /path/to/ca.pem")
    if isinstance(exc, requests.exceptions.ProxyError):
        return Unreachable(f"the proxy {proxy or '(from the environment)'} refused, failed or closed the request to "
                           f"{host(url)}: check proxy and the proxy's log")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return Unreachable(f"cannot connect to {host(url)}: {_connect_reason(exc, what)}")
    if isinstance(exc, requests.exceptions.InvalidURL):
        return ConfigError(f"the url {show(url)} in {where} is not valid")
    return Unreachable(f"request to {host(url)} failed: {type(exc).__name__}")


def show(url: str) -> str:
    """The URL fit for a message: never its query, which could carry a secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def host(url: str) -> str:
    return urlsplit(url).netloc


def _tls_reason(exc: Exception) -> str:
    text = str(exc)
    lowered = text.lower()
    if "mismatch" in lowered or "is not valid for" in lowered or ("hostname" in lowered and "match" in lowered):
        # Checked first: Python reports a name mismatch as CERTIFICATE_VERIFY_FAILED too.
        return "its certificate is for another host name or address: use the name the certificate is for in url"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "its certificate is not trusted"
    if "WRONG_VERSION_NUMBER" in text:
        return "it does not speak TLS on that port: is the url http://?"
    return "handshake failed"


def _connect_reason(exc: Exception, what: str) -> str:
    text = str(exc)
    if "Name or service not known" in text or "NameResolutionError" in text or "nodename nor servname" in text \
            or "Temporary failure in name resolution" in text:
        return "the host name does not resolve (DNS): check url"
    if "Connection refused" in text:
        return f"connection refused: nothing listens on that port, or {what} is down"
    if "No route to host" in text or "Network is unreachable" in text:
        return "no route to the host: check the network and firewall"
    if "timed out" in text:
        return "the connection timed out"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return f"{what} closed the connection without answering"
    return "the connection failed"
