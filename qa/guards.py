"""HTTP guards in front of the Gradio app (ASGI middleware): bounded requests, security headers on every
response, and Gradio's upload route refused to other sites, to callers without the admin password, past its
quotas and for file names that are paths."""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from qa.errors import QAError
from qa.service import ChatService, TooManyAttempts
from qa.uploads import MAX_UPLOAD_BYTES, MAX_UPLOAD_FILES, upload_name_problem

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

# Any other request (a question, a chat with its messages) holds at most this much: the page's largest, a chat
# of MAX_CHAT_MESSAGES answers, is about a fifth of it.
MAX_REQUEST_BYTES = 1024 * 1024
# ... and no list in it has more items than this: the page sends at most MAX_CHAT_MESSAGES chat messages,
# MAX_UPLOAD_FILES files, a history of MAX_HISTORY_TURNS questions.
MAX_LIST_ITEMS = 64
UPLOAD_CACHE_SECONDS = 3600  # Gradio deletes an uploaded file after this long (delete_cache)
TOTAL_UPLOAD_BYTES = 1024 * 1024 * 1024  # what all clients may have sent to the upload cache within that time
ADMIN_HEADER, ADMIN_COOKIE = "x-admin-password", "qa_admin"
# The page needs inline scripts and styles (Gradio's own) and eval (js_on_load); nothing else leaves this site,
# and no other site may frame it.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
CLOSE = {"connection": "close"}  # on a refusal: the server drops the connection rather than read the rest
# One upload request holds at most this much: every file the page takes at once, plus room for the form's
# headers. Larger than one file's limit, so Gradio's own 413 for a single oversized file still answers.
MAX_UPLOAD_REQUEST_BYTES = MAX_UPLOAD_BYTES * MAX_UPLOAD_FILES + 1024 * 1024
CLIENT_UPLOAD_BYTES_PER_HOUR = 3 * MAX_UPLOAD_REQUEST_BYTES  # three full pages of uploads an hour
# A Content-Disposition parameter: name=value, the value a quoted string (with \\ escapes) or a bare token.
_DISPOSITION_PARAM = re.compile(r'(?:^|;)\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.DOTALL)


def _header_text(raw: bytes) -> str:
    """Header bytes as Gradio reads them: UTF-8, else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def disposition_file_names(disposition: bytes) -> list[str]:
    """Every file name a part's Content-Disposition header gives: `filename` as python-multipart (so Gradio)
    reads it, and as written, before its work-around for old browsers keeps only what follows a backslash;
    `filename*` (RFC 5987, which Gradio ignores) as written and percent-decoded."""
    from python_multipart.multipart import parse_options_header

    text = disposition.decode("latin-1")
    names = []
    for key, value in _DISPOSITION_PARAM.findall(text):
        key, value = key.lower(), value.strip()
        if not key.startswith("filename"):
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace("\\\\", "\\").replace('\\"', '"')
        names.append(_header_text(value.encode("latin-1")))
        if "*" in key:  # charset'language'percent-encoded
            names.append(unquote(names[-1].split("'", 2)[-1], errors="replace"))
    gradio_name = parse_options_header(disposition)[1].get(b"filename")
    return names if gradio_name is None else [*names, _header_text(gradio_name)]


def is_upload_route(path: str) -> bool:
    """Gradio's upload route (`/gradio_api/upload`, under any root path), not an event named "upload"."""
    return path.rstrip("/").endswith("/gradio_api/upload")


class UploadQuota:
    """What Gradio's upload route may still take: per client (address) per hour, and from all clients
    together over the life of an uploaded file in the cache (UPLOAD_CACHE_SECONDS and one deletion round)."""

    def __init__(self, per_client: int | None = None, total: int | None = None) -> None:
        self.per_client = CLIENT_UPLOAD_BYTES_PER_HOUR if per_client is None else per_client
        self.total = TOTAL_UPLOAD_BYTES if total is None else total
        self._taken: deque[tuple[float, str, int]] = deque()  # (when, client, bytes), oldest first
        self._lock = threading.Lock()

    def allowance(self, client: str) -> tuple[int, tuple[int, str]]:
        """The bytes `client` may send now, and the refusal (status, message) for more than that."""
        now = time.monotonic()
        with self._lock:
            while self._taken and now - self._taken[0][0] > UPLOAD_CACHE_SECONDS + 300:
                self._taken.popleft()
            everyone = sum(size for _, _, size in self._taken)
            mine = sum(size for when, who, size in self._taken if who == client and now - when <= 3600)
        if self.total - everyone < self.per_client - mine:
            return max(0, self.total - everyone), (507, "refused: the upload cache is full; try again in an hour")
        return max(0, self.per_client - mine), (
            429,
            f"refused: at most {self.per_client / (1024 * 1024):.1f} MiB of uploads an hour from one address",
        )

    def record(self, client: str, size: int) -> None:
        with self._lock:
            self._taken.append((time.monotonic(), client, size))


class RefuseUploadPaths:
    """ASGI middleware for Gradio's upload route (POST `.../upload`), which the admin password does not guard by
    itself: it stores files in Gradio's cache before any event runs. Refused here, each with a JSON
    {"detail": message}: a request from another site's page (403); with an admin password set, one that does
    not carry it (401: an `X-Admin-Password` header, or the `qa_admin` cookie the page sets as it is typed; wrong
    ones count against the client like any other, 429 past the limit); more than a client may store in an hour
    or than the cache may hold (429, 507: UploadQuota); a body over MAX_UPLOAD_REQUEST_BYTES (413); and, as its
    part headers are parsed, a file name that is not a plain one (400, qa.uploads.upload_name_problem), since
    Gradio keeps only its last part. Otherwise Gradio gets the body unchanged, spooled to disk past 1 MiB."""

    def __init__(self, app, service: ChatService | None = None, quota: UploadQuota | None = None) -> None:
        self.app, self.service, self.quota = app, service, quota or UploadQuota()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not is_upload_route(scope["path"]):
            await self.app(scope, receive, send)
            return
        from python_multipart.exceptions import FormParserError
        from python_multipart.multipart import MultipartParser, parse_options_header
        from starlette.datastructures import Headers
        from starlette.responses import JSONResponse

        headers = Headers(scope=scope)

        async def refuse(status: int, message: str) -> None:
            # closed after the answer: what is left of a refused body is never read
            await JSONResponse({"detail": message}, status_code=status, headers=CLOSE)(scope, receive, send)

        client = (scope.get("client") or ("",))[0]
        if problem := self._refusal(headers, client):
            await refuse(*problem)
            return
        content_type, options = parse_options_header(headers.get("content-type", ""))
        if content_type != b"multipart/form-data" or b"boundary" not in options:
            await self.app(scope, receive, send)  # Gradio answers 400 "Invalid content type."
            return

        too_large = (
            f"refused: an upload request may hold at most {MAX_UPLOAD_REQUEST_BYTES // (1024 * 1024)} MiB "
            f"(the maximum allowed size: {MAX_UPLOAD_FILES} files of {MAX_UPLOAD_BYTES // (1024 * 1024)} "
            "MiB each)"
        )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_UPLOAD_REQUEST_BYTES:
            await refuse(413, too_large)
            return
        allowed, over_quota = self.quota.allowance(client)
        if declared.isdigit() and int(declared) > allowed:
            await refuse(*over_quota)
            return
        problems: list[str] = []
        header_name, header_value = bytearray(), bytearray()

        def header_end() -> None:
            if bytes(header_name).strip().lower() == b"content-disposition":
                names = disposition_file_names(bytes(header_value))
                problems.extend(p for p in map(upload_name_problem, names) if p)
            header_name.clear()
            header_value.clear()

        callbacks: MultipartCallbacks = {
            "on_header_field": lambda data, start, end: header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: header_value.extend(data[start:end]),
            "on_header_end": header_end,
        }
        with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as body:
            size, more, parser = 0, True, None
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk, more = message.get("body", b""), message.get("more_body", False)
                size += len(chunk)
                if size > MAX_UPLOAD_REQUEST_BYTES:
                    await refuse(413, too_large)
                    return
                if size > allowed:
                    await refuse(*over_quota)
                    return
                try:
                    parser = parser or MultipartParser(options[b"boundary"], callbacks)
                    parser.write(chunk)
                except FormParserError as error:  # Gradio's parser, the same one, would refuse it too
                    await refuse(400, f"refused: the upload is not a well-formed multipart form ({error})")
                    return
                if problems:
                    await refuse(400, problems[0])
                    return
                body.write(chunk)
            self.quota.record(client, size)
            body.seek(0)
            replayed = False

            async def replay():
                nonlocal replayed
                if not replayed:
                    chunk = body.read(256 * 1024)
                    replayed = not chunk or body.tell() >= size
                    return {"type": "http.request", "body": chunk, "more_body": not replayed}
                return await receive()  # after the body: the client's disconnect, as the server would say

            await self.app(scope, replay, send)

    def _refusal(self, headers, client: str) -> tuple[int, str] | None:
        """(status, message) for an upload request refused on its headers alone, else None."""
        from http.cookies import CookieError, SimpleCookie

        origin, host = headers.get("origin", ""), headers.get("host", "")
        if (origin and urlsplit(origin).netloc != host) or headers.get("sec-fetch-site") == "cross-site":
            return 403, "refused: uploads are taken only from this site's own page"
        if self.service is None or not self.service.admin_required:
            return None
        password = headers.get(ADMIN_HEADER)
        if password is None:
            try:
                cookie = SimpleCookie(headers.get("cookie", "")).get(ADMIN_COOKIE)
            except CookieError:
                cookie = None
            password = unquote(cookie.value) if cookie is not None else ""
        try:
            self.service.check_admin(password, client)
        except QAError as error:
            return (429 if isinstance(error, TooManyAttempts) else 401), f"refused: {error}"
        return None


def json_problem(body: bytes, content_type: str) -> str:
    """Why a JSON request body is refused (a list of more than MAX_LIST_ITEMS items anywhere in it: Gradio's
    chat parses every message of a 1 MiB list of tiny ones for most of a second), else ""."""
    if not content_type.lower().startswith("application/json"):
        return ""
    try:
        pending = [json.loads(body)]
    except (ValueError, RecursionError):
        return ""  # Gradio answers a malformed body itself
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            if len(value) > MAX_LIST_ITEMS:
                return f"refused: a list in a request may hold at most {MAX_LIST_ITEMS} items"
            pending.extend(value)
    return ""


class GuardRequests:
    """ASGI middleware in front of everything: any POST other than an upload carries at most
    MAX_REQUEST_BYTES (413 past it, before the app parses any of it: a 10 MB "history" never reaches the
    queue), and every response carries SECURITY_HEADERS."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        if scope["method"] != "POST" or is_upload_route(scope["path"]):
            await self.app(scope, receive, send_with_headers)
            return
        from starlette.datastructures import Headers
        from starlette.responses import JSONResponse

        too_large = JSONResponse(
            {"detail": f"refused: a request may hold at most {MAX_REQUEST_BYTES // 1024} KiB"},
            status_code=413,
            headers=CLOSE,
        )
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
            await too_large(scope, receive, send_with_headers)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size, more = size + len(chunks[-1]), message.get("more_body", False)
            if size > MAX_REQUEST_BYTES:
                await too_large(scope, receive, send_with_headers)
                return
        body = b"".join(chunks)
        if problem := json_problem(body, Headers(scope=scope).get("content-type", "")):
            await JSONResponse({"detail": problem}, status_code=413)(scope, receive, send_with_headers)
            return
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)
