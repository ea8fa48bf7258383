"""The request guards, plain ASGI middleware around the app, outermost first: who may ask (`OriginPolicy`)
and how much they may send (`UploadDeadline`: the time; `UploadLimit`: the size). A refusal is the API's
JSON error.

Why the origin policy: a web page in the user's browser can reach a server on 127.0.0.1. With DNS
rebinding, a name the page's author controls (rebind.attacker.example) is made to resolve to 127.0.0.1
after the page has loaded; the browser then treats our answers as the page's own, readable by its script,
but every request still says `Host: rebind.attacker.example`. So any Host that is not a name of this
server is refused, on every route. Without rebinding, a page can still send a request here cross-site (a
form's POST, an <img>): the browser says so in `Origin` and `Sec-Fetch-Site`, and the routes that run jobs
(every POST) or serve the indexed files (/v1/duplicates...) refuse it. A client that sends neither header
(curl, a script) is not a browser acting for a page, and is served.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

import anyio
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from aetools.serve.errors import error_response, shown

# The names every browser on this machine reaches a loopback server by (the bound address is added per
# connection: the local address the request came in on).
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

# Routes that serve the indexed files, refused cross-site like every state-changing request.
FILE_ROUTES = ("/v1/duplicates", "/v1/jobs")  # indexed files; job states (what a user is working on)

SAFE_METHODS = frozenset({"GET", "HEAD"})

# Sec-Fetch-Site values of a request the page itself made ("same-origin") or the user did (typed, a
# bookmark: "none"). "same-site" is another port or subdomain of this host: another server, refused.
OWN_SITES = frozenset({"same-origin", "none"})


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header (or the host of a URL) -> (name, port): 'LocalHost:8000' -> ('localhost', 8000),
    '[::1]' -> ('::1', None); None when it is not one."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket:
            return None
    else:
        name, colon, rest = value.partition(":")
        rest = colon + rest
    if not name or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
        return None
    return _canonical(name), int(rest[1:]) if rest else None


def _canonical(name: str) -> str:
    """An address in one spelling (IPv6: compressed, e.g. '0:0::1' -> '::1'); a name as it is."""
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name


class OriginPolicy:
    """ASGI middleware: the Host allow-list on every request, then Origin and Sec-Fetch-Site on the requests
    that run jobs (any method but GET and HEAD) or serve the indexed files (FILE_ROUTES). Refusals: 403.

    Args:
        allow_hosts: more names this server may be reached by (`aetools serve --allow-host`), e.g. a LAN name;
            the localhost names and the address a request came in on are always allowed.
    """

    def __init__(self, app, allow_hosts: Iterable[str] = ()):
        self.app = app
        self.names = LOCAL_NAMES | {_canonical(name.lower()) for name in allow_hosts}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope, Headers(scope=scope))
            if refusal is not None:
                await error_response(403, refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope, headers: Headers) -> str | None:
        """Why this request is refused, or None."""
        host = headers.get("host")
        if host is not None:  # HTTP/1.0 may omit it; a browser never does
            parsed = split_host(host)
            if parsed is None or parsed[0] not in self.names | self._bound(scope):
                return (
                    f"Host {shown(host)} is not a name of this server (DNS rebinding?); to serve it under another"
                    " name on purpose: aetools serve --allow-host NAME"
                )
        if scope["method"] in SAFE_METHODS and not scope["path"].startswith(FILE_ROUTES):
            return None
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, scope.get("scheme", "http"), host):
            return f"cross-origin request from {shown(origin)} refused: this route answers only this server's page"
        site = headers.get("sec-fetch-site")
        if site is not None and site not in OWN_SITES:
            return f"{site} request refused (Sec-Fetch-Site): this route answers only this server's page"
        return None

    @staticmethod
    def _bound(scope) -> set[str]:
        """The local address the request came in on (with --host 0.0.0.0: this machine's address on that
        network), so that http://192.168.1.20:8000/ works from another machine without --allow-host."""
        server = scope.get("server")
        if not server:
            return set()
        address = _canonical(str(server[0]).lower())
        try:  # a dual-stack socket ("::") names an IPv4 client's connection ::ffff:192.168.1.20
            mapped = ipaddress.IPv6Address(address).ipv4_mapped
        except ValueError:
            mapped = None
        return {address} if mapped is None else {address, str(mapped)}


def _same_origin(origin: str, scheme: str, host: str | None) -> bool:
    """Whether a request's Origin is this server's own (the scheme, and the name and port of its Host)."""
    own = split_host(host) if host else None
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return False
    if own is None or parts.scheme != scheme or parts.hostname is None:
        return False
    default = 443 if scheme == "https" else 80
    return _canonical(parts.hostname) == own[0] and (port or default) == (own[1] or default)


class UploadStalled(HTTPException):
    """A request body that stopped arriving (or arrives too slowly): 408, and the connection is closed.
    An HTTPException, so that the app's handler answers it when it happens while a form is parsed."""

    def __init__(self, detail: str):
        super().__init__(408, detail, headers={"Connection": "close"})


class UploadDeadline:
    """ASGI middleware: a request body must keep arriving (at most `read_timeout` seconds between two
    pieces) and be complete within `upload_timeout` seconds, else the request is answered 408 and its
    connection closed, which frees what was kept of it (the form parser closes its spooled files). Once
    the body is in, receiving is left alone: it then waits for the client to disconnect (a job's
    cancellation, app.py)."""

    def __init__(self, app, read_timeout: float, upload_timeout: float):
        self.app, self.read_timeout, self.upload_timeout = app, read_timeout, upload_timeout

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.upload_timeout
        body_done = False
        response_started = False

        async def timed_receive():
            nonlocal body_done
            if body_done:
                return await receive()
            left = deadline - time.monotonic()
            try:
                with anyio.fail_after(max(0.0, min(self.read_timeout, left))):
                    message = await receive()
            except TimeoutError:
                if left <= self.read_timeout:
                    raise UploadStalled(
                        f"upload not complete after {self.upload_timeout:g} s (aetools serve --upload-timeout)"
                    ) from None
                raise UploadStalled(
                    f"upload stalled: nothing received for {self.read_timeout:g} s (aetools serve --read-timeout)"
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracked_send(message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except UploadStalled as e:  # raised where no handler of the app sees it (UploadLimit's draining)
            if response_started:
                raise
            await error_response(408, e.detail, e.headers)(scope, receive, send)


class UploadLimit:
    """ASGI middleware: a request body over `max_bytes` is refused (413) from its Content-Length; nothing of
    it is kept (it is read and dropped, so that a client still sending it gets the answer); a body without
    one (chunked) is refused (411). The HTTP server (h11) refuses a body longer than its Content-Length."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            refusal = None
            if length is None and b"transfer-encoding" in headers:
                refusal = error_response(411, "send a Content-Length: chunked uploads are not taken")
            elif length is not None and not length.isdigit():
                refusal = error_response(400, "Content-Length: not a number")
            elif length is not None and int(length) > self.max_bytes:
                refusal = error_response(
                    413,
                    f"upload of {int(length) / 1e6:.1f} MB is over the server's {self.max_bytes / 1e6:g} MB limit"
                    " (aetools serve --max-upload-mb)",
                )
            if refusal is not None:
                if length is not None:  # read and drop the body, so that a client sending it can read the answer
                    message = await receive()
                    while message["type"] == "http.request" and message.get("more_body"):
                        message = await receive()
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
