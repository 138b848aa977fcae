"""A thin client over ksqlDB's documented REST API, and the project's uses of it.

  POST /ksql    statements (CREATE …, LIST STREAMS EXTENDED, LIST TABLES EXTENDED, DESCRIBE)
  GET  /status  polling a command that is still QUEUED / PARSING / EXECUTING
  POST /query   pull queries (HTTP/1.1, application/vnd.ksql.v1+json: one JSON array of header + rows)
  GET  /info    reachability

Secured servers: https (the server's certificate checked against KSQLDB_SSL_CA, or the system's CAs) and HTTP basic
authentication (KSQLDB_USER / KSQLDB_PASSWORD), as ksqlDB's `authentication.method=BASIC` asks.

Standard library only (urllib): PyPI `ksql` 0.10.2 cannot be imported on Python >= 3.10 (its dependency
`hyper` imports `collections.Iterable`) and `ksql-python-ng` is not maintained; the API we need is four
endpoints of plain JSON. See docs/ksqldb.md. Errors come back as LakehouseError carrying ksqlDB's own
`error_code` and `message`.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

from lakehouse.catalog import FeedCatalog
from lakehouse.errors import LakehouseError
from lakehouse.kafka.records import normalize_columns, snake_case
from lakehouse.settings import Settings

CONTENT_TYPE = "application/vnd.ksql.v1+json"
DEFAULT_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 2.0
_PENDING = ("QUEUED", "PARSING", "EXECUTING")
_POLL_INTERVALS_S = (0.1, 0.2, 0.5, 1.0)  # back-off while a command is pending; the last one repeats
_TOPIC_LITERAL = re.compile(r"(KAFKA_TOPIC\s*=\s*')([^']*)(')", re.IGNORECASE)
_BACKTICK_NAME = re.compile(r"`([^`]*)`")


class Unreachable(LakehouseError):
    """Nothing answered at the URL (as opposed to a server that answered and refused us)."""


class KsqlClient:
    """`user`/`password`: HTTP basic authentication (KSQLDB_USER / KSQLDB_PASSWORD); `ca`: the CA file an https
    server's certificate must chain to (KSQLDB_SSL_CA; empty: the system's CAs)."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S, *, user: str = "", password: str = "",
                 ca: str = "") -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE}
        if user:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._tls = _tls_context(ca) if self.url.startswith("https:") else None

    # ------------------------------------------------------------------ statements
    def execute(self, statements: str | list[str]) -> list[dict]:
        """Run statements one request each, in order; returns one result entity per statement.

        Each request waits for the previous command (commandSequenceNumber), as ksqlDB documents for
        interdependent statements; a command still pending is polled on /status until it settles.
        """
        texts = split_statements(statements) if isinstance(statements, str) else statements
        results: list[dict] = []
        sequence: int | None = None
        for text in texts:
            body: dict = {"ksql": text, "streamsProperties": {}}
            if sequence is not None and sequence >= 0:
                body["commandSequenceNumber"] = sequence
            for entity in self._request("POST", "/ksql", body):
                entity = self._settle(entity)
                sequence = entity.get("commandSequenceNumber", sequence)
                results.append(entity)
        return results

    def list_streams(self) -> list[dict]:
        """sourceDescription of every stream (LIST STREAMS EXTENDED)."""
        return self._source_descriptions("LIST STREAMS EXTENDED;")

    def list_tables(self) -> list[dict]:
        """sourceDescription of every table (LIST TABLES EXTENDED)."""
        return self._source_descriptions("LIST TABLES EXTENDED;")

    def describe(self, name: str) -> dict:
        """The sourceDescription of one stream or table: name, type, topic, keyFormat, valueFormat, fields."""
        entity = self._only_entity(self.execute([f"DESCRIBE {_identifier(name)};"]), "sourceDescription")
        return entity["sourceDescription"]

    # ------------------------------------------------------------------ queries
    def pull(self, query: str) -> list[dict]:
        """Rows of a pull query as dicts keyed by ksqlDB's column names (key columns included)."""
        if re.search(r"\bEMIT\s+CHANGES\b", query, re.IGNORECASE):
            raise LakehouseError("pull() runs pull queries only; push queries (EMIT CHANGES) never end")
        chunks = self._request("POST", "/query", {"ksql": query, "streamsProperties": {}})
        return rows_from_query_response(chunks)

    def reachable(self) -> bool:
        """Whether a server answers; one that refuses our credentials or certificate check still raises."""
        try:
            self._request("GET", "/info", None, timeout=min(self.timeout, PROBE_TIMEOUT_S))
        except Unreachable:
            return False
        return True

    # ------------------------------------------------------------------ plumbing
    def _source_descriptions(self, statement: str) -> list[dict]:
        return self._only_entity(self.execute([statement]), "source_descriptions")["sourceDescriptions"]

    @staticmethod
    def _only_entity(entities: list[dict], wanted: str) -> dict:
        for entity in entities:
            if entity.get("@type") == wanted:
                return entity
        raise LakehouseError(f"ksqlDB answered without a {wanted} entity: {entities!r:.300}")

    def _settle(self, entity: dict) -> dict:
        """Wait (with back-off, never spinning) until a queued command succeeds or fails."""
        status = entity.get("commandStatus") or {}
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while status.get("status") in _PENDING:
            if time.monotonic() >= deadline:
                raise LakehouseError(f"ksqlDB command {entity.get('commandId')} still {status['status']} "
                                     f"after {self.timeout:g}s")
            time.sleep(_POLL_INTERVALS_S[min(attempt, len(_POLL_INTERVALS_S) - 1)])
            attempt += 1
            status = self._request("GET", f"/status/{entity['commandId']}", None)
            entity = {**entity, "commandStatus": status}
        if status.get("status") == "ERROR":
            raise LakehouseError(f"ksqlDB: {entity.get('statementText', '').strip()}: {status.get('message')}")
        return entity

    def _request(self, method: str, path: str, body: dict | None, timeout: float | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout, context=self._tls) as response:
                return _parse_json(response.read(), path)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise LakehouseError(f"ksqlDB at {self.url} refused the request to {path} (HTTP {exc.code}); "
                                     "check KSQLDB_USER and KSQLDB_PASSWORD") from None
            raise _server_error(exc.code, exc.read(), path) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise LakehouseError(f"ksqlDB at {self.url}: its certificate was not accepted "
                                     f"({reason.verify_message}); check KSQLDB_SSL_CA (the CA that signed it) "
                                     "and the host name in KSQLDB_URL") from None
            raise Unreachable(f"ksqlDB is not reachable at {self.url} ({reason}); check KSQLDB_URL") from None
        except http.client.HTTPException as exc:  # IncompleteRead: the connection dropped mid-body
            raise LakehouseError(f"ksqlDB {path} at {self.url}: the connection dropped before the answer was "
                                 f"complete ({type(exc).__name__}); nothing of it was used") from None


def _tls_context(ca: str) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca or None)
    except (OSError, ssl.SSLError) as exc:
        raise LakehouseError(f"KSQLDB_SSL_CA: cannot load {ca} ({getattr(exc, 'strerror', None) or exc})") from None


def _parse_json(raw: bytes, path: str):
    """The whole body as one JSON document. /query streams "[header,\n row,\n …]" and ends with "]": a body cut
    short before it is refused, never read as the rows it got (a table would silently lose the rest)."""
    try:
        return json.loads(raw)
    except ValueError:
        raise LakehouseError(f"ksqlDB {path} answered with something that is not complete JSON ({len(raw)} bytes, "
                             f"ending {raw[-60:]!r}); nothing of it was used") from None


def _server_error(status: int, raw: bytes, path: str) -> LakehouseError:
    """ksqlDB's error body: {"@type": "statement_error"|"generic_error", "error_code", "message", …}."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict) or "message" not in body:
        return LakehouseError(f"ksqlDB {path} failed with HTTP {status}: {raw[:200].decode(errors='replace')}")
    statement = " ".join((body.get("statementText") or "").split())
    where = f" in: {statement}" if statement else ""
    # One line: ksqlDB's messages often span several (syntax errors list what was expected).
    message = " ".join(str(body["message"]).split())
    return LakehouseError(f"ksqlDB error {body.get('error_code', status)}: {message}{where}")


# ---------------------------------------------------------------------- wire-format helpers (pure)
def split_statements(script: str) -> list[str]:
    """Split a SQL script into statements ending with ';' (quotes, backticks and -- comments respected)."""
    statements, current = [], []
    quote: str | None = None
    index = 0
    while index < len(script):
        char = script[index]
        if quote:
            current.append(char)
            if char == quote:
                quote = None
        elif char in "'`\"":
            quote = char
            current.append(char)
        elif script.startswith("--", index):
            end = script.find("\n", index)
            index = len(script) if end < 0 else end
            continue
        elif char == ";":
            statements.append("".join(current).strip() + ";")
            current = []
        else:
            current.append(char)
        index += 1
    if "".join(current).strip():
        raise LakehouseError(f"statement without a final ';': {' '.join(''.join(current).split())[:80]}")
    return statements


def column_names(schema: str) -> list[str]:
    """Names from a /query header schema such as "`ID` STRING KEY, `S` STRUCT<`A` INT, `B` STRING>"."""
    names, depth, start = [], 0, 0
    in_name = False
    for index, char in enumerate(schema + ","):
        if char == "`":
            in_name = not in_name
        elif in_name:
            continue
        elif char in "<(":
            depth += 1
        elif char in ">)":
            depth -= 1
        elif char == "," and depth == 0:
            column = schema[start:index].strip()
            match = _BACKTICK_NAME.match(column)
            names.append(match.group(1) if match else column.split()[0])
            start = index + 1
    return names


def rows_from_query_response(chunks: list[dict]) -> list[dict]:
    """Header + rows of a /query response -> dicts; tombstones skipped; an errorMessage raises."""
    if not isinstance(chunks, list) or not chunks or not all(isinstance(chunk, dict) for chunk in chunks):
        raise LakehouseError("ksqlDB /query answered without a JSON array of header and rows")
    names: list[str] | None = None
    rows = []
    for chunk in chunks:
        if "header" in chunk:
            names = column_names(chunk["header"]["schema"])
        elif chunk.get("errorMessage"):
            error = chunk["errorMessage"]
            raise LakehouseError(f"ksqlDB error {error.get('error_code')}: {error.get('message')}")
        elif chunk.get("row") and not chunk["row"].get("tombstone"):
            if names is None:
                raise LakehouseError("ksqlDB /query sent a row before its header")
            rows.append(dict(zip(names, chunk["row"]["columns"], strict=True)))
    return rows


def _identifier(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise LakehouseError(f"invalid ksqlDB stream or table name {name!r}")
    return name.upper()


# ---------------------------------------------------------------------- project operations
class AppliedStatement(NamedTuple):
    file: str
    statement: str  # first words, e.g. "CREATE STREAM IF NOT EXISTS TRANSACTION_STREAM"
    outcome: str    # ksqlDB's message: "Stream created", or the warning of an existing source


class DiscoveredSource(NamedTuple):
    name: str
    kind: str       # stream | table
    topic: str
    schema: str     # "COLUMN TYPE, …", key columns marked KEY
    is_feed: bool   # a catalog feed already lands it


def client_for(settings: Settings, timeout: float = DEFAULT_TIMEOUT_S) -> KsqlClient:
    return KsqlClient(settings.ksqldb_url, timeout, user=settings.ksqldb_user, password=settings.ksqldb_password,
                      ca=settings.ksqldb_ssl_ca)


def topology_files(directory: str | Path = "ksql") -> list[Path]:
    files = sorted(Path(directory).glob("*.sql"))
    if not files:
        raise LakehouseError(f"no ksqlDB statements (*.sql) in {directory}")
    return files


def prefixed_topics(statement: str, settings: Settings) -> str:
    """KAFKA_TOPIC='name' -> the environment's topic (LAKEHOUSE_TOPIC_PREFIX), like every other script."""
    return _TOPIC_LITERAL.sub(lambda m: f"{m.group(1)}{settings.topic(m.group(2))}{m.group(3)}", statement)


def apply_topology(settings: Settings, directory: str | Path = "ksql") -> list[AppliedStatement]:
    """Run ksql/*.sql in file-name order; the statements are idempotent (IF NOT EXISTS)."""
    sources = [(path.name, statement) for path in topology_files(directory)
               for statement in split_statements(path.read_text(encoding="utf-8"))]
    # One execute() call, so each statement waits for the command of the one before it.
    entities = client_for(settings).execute([prefixed_topics(statement, settings) for _file, statement in sources])
    return [AppliedStatement(file, _head(statement), _outcome(entity))
            for (file, statement), entity in zip(sources, entities, strict=True)]


def discover(settings: Settings, catalog: FeedCatalog) -> list[DiscoveredSource]:
    """ksqlDB's streams and tables with topics and schemas; is_feed tells which the catalog already lands."""
    client = client_for(settings)
    feeds = catalog.list()
    feed_topics = {settings.topic(feed.topic) for feed in feeds}
    feed_names = {feed.ksql_name.upper() for feed in feeds}
    found = []
    for description in client.list_streams() + client.list_tables():
        found.append(DiscoveredSource(
            name=description["name"], kind=description["type"].lower(), topic=description["topic"],
            schema=describe_fields(description.get("fields", [])),
            is_feed=description["topic"] in feed_topics or description["name"].upper() in feed_names))
    return sorted(found, key=lambda source: (source.kind, source.name))


def key_columns(description: dict) -> list[str]:
    """Key column names (snake_case) of a sourceDescription."""
    return [snake_case(field["name"]) for field in description.get("fields", []) if _is_key(field)]


def describe_fields(fields: list[dict]) -> str:
    return ", ".join(f"{field['name']} {_type_text(field['schema'])}"
                     + (" KEY" if _is_key(field) else "")
                     for field in fields)


def _is_key(field: dict) -> bool:
    # FieldInfo serializes its FieldType as "type"; older servers named it "fieldType".
    return (field.get("type") or field.get("fieldType")) == "KEY"


def _type_text(schema: dict) -> str:
    kind = schema.get("type", "?")
    if kind == "STRUCT":
        return "STRUCT<" + ", ".join(f"{f['name']} {_type_text(f['schema'])}" for f in schema.get("fields") or []) + ">"
    if kind in ("ARRAY", "MAP") and schema.get("memberSchema"):
        return f"{kind}<{_type_text(schema['memberSchema'])}>"
    parameters = schema.get("parameters") or {}
    if kind == "DECIMAL" and "precision" in parameters:  # the scale says what the values carry
        return f"DECIMAL({parameters['precision']}, {parameters.get('scale', 0)})"
    return kind


def pull_table(settings: Settings, ksql_name: str) -> list[dict]:
    """Every row of a ksqlDB table (a pull query scan), columns in snake_case, key columns included."""
    rows = client_for(settings).pull(f"SELECT * FROM {_identifier(ksql_name)};")
    return [normalize_columns(row) for row in rows]


def pull_by_key(settings: Settings, ksql_name: str, key: dict[str, str | int]) -> list[dict]:
    """The row(s) of a ksqlDB table with these key column values (a keyed pull query: a lookup, not a scan),
    columns in snake_case. `key` maps key column names (any case) to values."""
    if not key:
        raise LakehouseError("a keyed pull query needs at least one key column")
    conditions = " AND ".join(f"{_identifier(column)} = {_literal(value)}" for column, value in key.items())
    rows = client_for(settings).pull(f"SELECT * FROM {_identifier(ksql_name)} WHERE {conditions};")
    return [normalize_columns(row) for row in rows]


def _literal(value: str | int) -> str:
    """A ksqlDB literal: integers as they are, text quoted with its quotes doubled (so a value never becomes SQL)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise LakehouseError(f"key values are text or integers, got {value!r}")
    return "'" + value.replace("'", "''") + "'"


def _head(statement: str) -> str:
    words = statement.rstrip(";").split()
    cut = next((i for i, w in enumerate(words) if w.upper() in ("(", "WITH", "AS") or w.startswith("(")), len(words))
    return " ".join(words[:cut])


def _outcome(entity: dict) -> str:
    if entity.get("commandStatus"):
        return entity["commandStatus"].get("message", "")
    return entity.get("message") or entity.get("@type", "")
