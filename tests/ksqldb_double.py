"""A local HTTP server speaking ksqlDB's REST wire format, from recorded request/response pairs.

ksqlDB cannot be installed on these machines, so the client is tested against this double. The pairs
live in tests/fixtures/ksqldb/*.json, transcribed from ksqlDB's REST API reference and its REST entity
classes (KsqlEntity subtypes, SourceDescription, FieldInfo, StreamedRow, KsqlErrorMessage):

  {"name": …, "request": {"method": "POST", "path": "/ksql", "ksql": "<regex over the statement>"},
   "when": "absent" | "present",      optional: only if the source named by (?P<name>…) is (not) known
   "creates": true,                   optional: the named source is known afterwards
   "response": {"status": 200, "body": …}}

Strings in a response body may use {ksql} (the statement as sent), {name} and {seq} (the next command
sequence number). /query bodies are written the way ksqlDB streams them: chunked, "[header,\\nrow,\\n…]".
Requests are kept in `requests` so tests can assert what the client sent.

Faults: `cut_queries(rows, drop_connection)` makes every later /query answer stop after its header and `rows`
rows, either ending the chunked body cleanly without the closing ']' or dropping the connection mid-chunk.

Secured, as a ksqlDB server with `authentication.method=BASIC` and an https listener: `credentials=(user, password)`
answers 401 (ksqlDB's body and WWW-Authenticate header) to a request without exactly that Authorization header;
`tls=(certificate, key)` serves https with that certificate (PEM files).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "ksqldb"
CONTENT_TYPE = "application/vnd.ksql.v1+json"


class KsqlDbDouble:
    def __init__(self, fixture_files: list[str] | None = None, known_sources: tuple[str, ...] = (), *,
                 credentials: tuple[str, str] | None = None, tls: tuple[Path, Path] | None = None) -> None:
        paths = [FIXTURES / name for name in fixture_files] if fixture_files else sorted(FIXTURES.glob("*.json"))
        self.exchanges = [exchange for path in paths for exchange in json.loads(path.read_text())]
        self.known = {name.upper() for name in known_sources}
        self.requests: list[dict] = []
        self.sequence = 0
        self.query_cut: tuple[int, bool] | None = None  # (rows sent, connection dropped); see cut_queries
        self._lock = threading.Lock()
        self.authorization = None if credentials is None else "Basic " + base64.b64encode(
            ":".join(credentials).encode()).decode()
        self.refused = 0  # requests answered 401
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def start(self) -> KsqlDbDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def cut_queries(self, rows: int, drop_connection: bool = False) -> None:
        """Every later /query answer stops after its header and `rows` rows: the chunked body ends cleanly but
        without ']', or (drop_connection) the connection closes in the middle of a chunk."""
        self.query_cut = (rows, drop_connection)

    def statements(self) -> list[str]:
        return [r["body"]["ksql"] for r in self.requests if r["path"] == "/ksql"]

    # ------------------------------------------------------------------ matching
    def answer(self, method: str, path: str, body: dict | None) -> tuple[int, object]:
        with self._lock:
            self.requests.append({"method": method, "path": path, "body": body})
            statement = " ".join(str((body or {}).get("ksql") or (body or {}).get("sql") or "").split())
            for exchange in self.exchanges:
                match = self._matches(exchange, method, path, statement)
                if match is None:
                    continue
                name = (match.groupdict().get("name") or "").upper()
                if exchange.get("creates"):
                    self.known.add(name)
                self.sequence += 1
                values = {"ksql": statement, "name": name, "seq": self.sequence}
                return exchange["response"]["status"], _render(exchange["response"]["body"], values)
        return 400, {"@type": "statement_error", "error_code": 40001,
                     "message": f"the ksqlDB double has no recording for {method} {path} {statement!r}",
                     "statementText": statement, "entities": []}

    def _matches(self, exchange: dict, method: str, path: str, statement: str) -> re.Match | None:
        request = exchange["request"]
        if request["method"] != method or not re.fullmatch(request["path"], path):
            return None
        match = re.fullmatch(request.get("ksql", ".*"), statement, re.IGNORECASE | re.DOTALL)
        if match is None:
            return None
        name = (match.groupdict().get("name") or "").upper()
        when = exchange.get("when")
        if (when == "absent" and name in self.known) or (when == "present" and name not in self.known):
            return None
        return match

    # ------------------------------------------------------------------ HTTP
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self._reply(None)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self._reply(json.loads(self.rfile.read(length) or b"null"))

            def _reply(self, body: dict | None) -> None:
                if double.authorization and self.headers.get("Authorization") != double.authorization:
                    self._refuse()
                    return
                status, payload = double.answer(self.command, self.path, body)
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPE)
                if self.path == "/query" and status == 200:
                    self._send_streamed(payload)
                    return
                data = json.dumps(payload).encode()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _refuse(self) -> None:
                with double._lock:
                    double.refused += 1
                data = json.dumps({"@type": "generic_error", "error_code": 40100, "message": "Unauthorized"}).encode()
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="KsqlServer-Props"')
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send_streamed(self, chunks: list) -> None:
                # As ksqlDB's JsonStreamedRowResponseWriter: '[' header ',\n' row ',\n' … ']', chunked.
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                parts = ["[" + json.dumps(chunks[0])] + [",\n" + json.dumps(chunk) for chunk in chunks[1:]] + ["]"]
                if double.query_cut is not None:
                    rows, drop_connection = double.query_cut
                    parts = parts[:1 + rows]
                    if drop_connection:  # announce a chunk, send half of it, hang up
                        data = json.dumps(chunks[-1]).encode()
                        self.wfile.write(b"".join(self._chunk(part.encode()) for part in parts))
                        self.wfile.write(f"{len(data):x}\r\n".encode() + data[:len(data) // 2])
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                for part in parts:
                    self.wfile.write(self._chunk(part.encode()))
                self.wfile.write(b"0\r\n\r\n")

            @staticmethod
            def _chunk(data: bytes) -> bytes:
                return f"{len(data):x}\r\n".encode() + data + b"\r\n"

            def log_message(self, *args: object) -> None:
                pass  # keep test output clean

        return Handler


def _render(value: object, values: dict) -> object:
    if isinstance(value, str):
        if value == "{seq}":
            return values["seq"]
        for placeholder in ("ksql", "name", "seq"):
            value = value.replace("{" + placeholder + "}", str(values[placeholder]))
        return value
    if isinstance(value, list):
        return [_render(item, values) for item in value]
    if isinstance(value, dict):
        return {key: _render(item, values) for key, item in value.items()}
    return value


@pytest.fixture
def ksqldb_double() -> Iterator[KsqlDbDouble]:
    double = KsqlDbDouble().start()
    yield double
    double.stop()
