"""A small Hasura-compatible GraphQL server over real PostgreSQL, for tests and the bench.

Its tables come from the shipped migration in nhost/migrations (pgvector's column becomes real[]).

It mirrors the API Hasura generates for the documents and chunks tables (insert, insert_one,
update_by_pk, upserts through ``on_conflict``, simple ``where``), answers errors in Hasura's
shape (HTTP 200, ``{"errors": [{"message", "extensions": {"path", "code"}}]}``), checks the
admin secret or an HS256 JWT (role ``user`` sees and writes only its own rows), and lets a
test inject HTTP faults. Each server keeps its rows in a private PostgreSQL schema.

    with serve_hasura() as (url, server):
        server.fail_next(1, status=500)
        ...
        server.rows("documents")
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import psycopg
from graphql import GraphQLError, build_schema, graphql_sync
from graphql.utilities import value_from_ast_untyped
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

PG_DSN = os.environ.get("TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
ADMIN_SECRET = "test-admin-secret-0123456789abcdef"
JWT_KEY = "test-jwt-key-0123456789abcdef0123456789abcdef"
JWT_SECRET_SETTING = json.dumps({"type": "HS256", "key": JWT_KEY})
CLAIMS = "https://hasura.io/jwt/claims"
PERMISSION_FAILED = "check constraint of an insert/update permission has failed"

DOC_COLUMNS = {
    "id": ("uuid!", "uuid"),
    "job_id": ("String!", "text"),
    "user_id": ("uuid", "uuid"),
    "filename": ("String", "text"),
    "upload_device": ("String", "text"),
    "page_count": ("Int", "integer"),
    "metadata": ("jsonb", "jsonb"),
    "status": ("String", "text"),
    "created_at": ("timestamptz", "timestamptz"),
}
CHUNK_COLUMNS = {
    "id": ("uuid!", "uuid"),
    "document_id": ("uuid!", "uuid"),
    "chunk_index": ("Int!", "integer"),
    "content": ("String!", "text"),
    "char_count": ("Int", "integer"),
    "start_page": ("Int", "integer"),
    "end_page": ("Int", "integer"),
    "pages": ("jsonb", "jsonb"),
}
COMPARABLE = {"String", "Int", "uuid"}
VIOLATIONS = {
    "UniqueViolation": "Uniqueness violation",
    "ForeignKeyViolation": "Foreign key violation",
    "NotNullViolation": "Not-NULL violation",
    "CheckViolation": "Check constraint violation",
}
MIGRATION = (
    Path(__file__).resolve().parent.parent
    / "nhost/migrations/default/1767225600000_documents_and_chunks/up.sql"
)


def mint_token(user_id: str, *, expires_in: int = 900, key: str = JWT_KEY, **extra: Any) -> str:
    """Return an HS256 Nhost-style access token for a user (role ``user``)."""
    claims = {
        "sub": user_id,
        "iat": int(time.time()),
        "exp": int(time.time()) + expires_in,
        CLAIMS: {
            "x-hasura-user-id": user_id,
            "x-hasura-default-role": "user",
            "x-hasura-allowed-roles": ["user", "me"],
        },
        **extra,
    }
    return jwt.encode(claims, key, algorithm="HS256")


class HasuraError(Exception):
    """An error Hasura would report with this message and extensions.code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message, self.code = message, code

    def body(self, path: str = "$") -> dict:
        """Return Hasura's error body."""
        return {
            "errors": [{"message": self.message, "extensions": {"path": path, "code": self.code}}]
        }


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 200


@dataclass
class _Fault:
    status: int
    retry_after: str | None = None


def _sdl(name: str, columns: dict, relationship: str) -> str:
    plain = {col: gql.rstrip("!") for col, (gql, _) in columns.items()}
    comparisons = "\n".join(
        f"  {col}: {t}_comparison_exp" for col, t in plain.items() if t in COMPARABLE
    )
    inputs = "\n".join(f"  {col}: {t}" for col, t in plain.items())
    fields = "\n".join(f"  {col}: {gql}" for col, (gql, _) in columns.items())
    orders = "\n".join(f"  {col}: order_by" for col in columns)
    return f"""
type {name} {{
{fields}
{relationship}
}}
input {name}_bool_exp {{
  _and: [{name}_bool_exp!]
{comparisons}
}}
input {name}_order_by {{
{orders}
}}
input {name}_insert_input {{
{inputs}
}}
input {name}_set_input {{
{inputs}
}}
input {name}_pk_columns_input {{ id: uuid! }}
enum {name}_update_column {{ {" ".join(columns)} }}
type {name}_mutation_response {{ affected_rows: Int! returning: [{name}!]! }}
"""


def _root_fields(name: str) -> tuple[str, str]:
    query = (
        f"  {name}(where: {name}_bool_exp, order_by: [{name}_order_by!], limit: Int): [{name}!]!\n"
        f"  {name}_by_pk(id: uuid!): {name}\n"
    )
    conflict = f"on_conflict: {name}_on_conflict"
    mutation = (
        f"  insert_{name}(objects: [{name}_insert_input!]!, {conflict}): {name}_mutation_response\n"
        f"  insert_{name}_one(object: {name}_insert_input!, {conflict}): {name}\n"
        f"  update_{name}_by_pk(pk_columns: {name}_pk_columns_input!, _set: {name}_set_input)"
        f": {name}\n"
    )
    return query, mutation


def hasura_sdl(docs: str, chunks: str) -> str:
    """Return the SDL of the API Hasura generates for the two tables."""
    parts = ["scalar uuid\nscalar jsonb\nscalar timestamptz\nenum order_by { asc desc }"]
    for t in COMPARABLE:
        parts.append(
            f"input {t}_comparison_exp {{ _eq: {t} _neq: {t} _in: [{t}!] _gt: {t} "
            f"_gte: {t} _lt: {t} _lte: {t} }}"
        )
    parts.append(_sdl(docs, DOC_COLUMNS, f"  chunks(order_by: [{chunks}_order_by!]): [{chunks}!]!"))
    parts.append(_sdl(chunks, CHUNK_COLUMNS, f"  document: {docs}!"))
    for name, keys in ((docs, "pkey job_id_key"), (chunks, "pkey document_id_chunk_index_key")):
        values = " ".join(f"{name}_{key}" for key in keys.split())
        parts.append(
            f"enum {name}_constraint {{ {values} }}\ninput {name}_on_conflict {{ "
            f"constraint: {name}_constraint! update_columns: [{name}_update_column!]! = [] }}"
        )
    (q1, m1), (q2, m2) = _root_fields(docs), _root_fields(chunks)
    parts.append(f"type query_root {{\n{q1}{q2}}}\ntype mutation_root {{\n{m1}{m2}}}")
    parts.append("schema { query: query_root mutation: mutation_root }")
    return "\n".join(parts)


def migration_sql() -> str:
    """Return the shipped migration, made to run in a private schema without pgvector."""
    text = MIGRATION.read_text().replace("public.", "").replace("vector(1536)", "real[]")
    return "\n".join(line for line in text.splitlines() if "create extension" not in line)


def _valid_uuid(value: Any) -> str:
    return str(uuid.UUID(str(value)))


class HasuraServer:
    """The server's state: the schema, the rows' PostgreSQL schema, faults and a request log."""

    def __init__(self, admin_secret: str, jwt_key: str, dsn: str) -> None:
        self.docs, self.chunks = "documents", "document_chunks"
        self.admin_secret, self.jwt_key = admin_secret, jwt_key
        self.pg_schema = f"hasura_test_{uuid.uuid4().hex[:12]}"
        self.columns = {self.docs: DOC_COLUMNS, self.chunks: CHUNK_COLUMNS}
        self.request_count = 0
        self.received: list[Received] = []
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._conn = psycopg.connect(dsn, autocommit=True, row_factory=dict_row)
        self._create_tables()
        self.schema = self._build_schema()

    # ------------------------------------------------------------ test knobs
    def fail_next(self, count: int, status: int = 500, retry_after: str | None = None) -> None:
        """Answer the next ``count`` requests with this HTTP status (and Retry-After)."""
        with self._lock:
            self._faults.extend(_Fault(status, retry_after) for _ in range(count))

    def disconnect_next(self, count: int) -> None:
        """Close the connection without answering the next ``count`` requests."""
        self.fail_next(count, status=0)

    def reset_log(self) -> None:
        """Forget the counted and recorded requests."""
        with self._lock:
            self.request_count, self.received = 0, []

    def rows(self, table: str, order: str = "id") -> list[dict]:
        """Return a table's rows straight from PostgreSQL."""
        query = sql.SQL("select * from {} order by {}").format(
            self._table(table), sql.Identifier(order)
        )
        with self._lock:
            return self._conn.execute(query).fetchall()

    def execute(self, statement: str) -> None:
        """Run SQL in this server's schema (for test set-up such as triggers)."""
        with self._lock:
            self._conn.execute(f"set search_path to {self.pg_schema}")
            self._conn.execute(statement)
            self._conn.execute("set search_path to default")

    def close(self) -> None:
        """Drop this server's schema and close its connection."""
        with contextlib.suppress(psycopg.Error):
            self._conn.execute(
                sql.SQL("drop schema {} cascade").format(sql.Identifier(self.pg_schema))
            )
        self._conn.close()

    # ------------------------------------------------------------ HTTP
    def respond(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, dict]:
        """Answer one POST: (HTTP status, JSON body or None to hang up, extra headers)."""
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            self.request_count += 1
            fault = self._faults.popleft() if self._faults else None
            self.received.append(Received(path, headers, body, fault.status if fault else 200))
        if fault:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return fault.status, {"error": "injected fault"}, extra
        if path.rstrip("/") not in ("/v1", "/v1/graphql"):
            return 404, {"error": "resource does not exist", "code": "not-found"}, {}
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return (
                200,
                HasuraError("the request body is not a GraphQL request", "invalid-json").body(),
                {},
            )
        try:
            session = self._session(headers)
        except HasuraError as exc:
            return 200, exc.body(), {}
        return 200, self._execute(body, session), {}

    def _session(self, headers: dict[str, str]) -> dict:
        if "x-hasura-admin-secret" in headers:
            if not hmac.compare_digest(
                headers["x-hasura-admin-secret"].encode(), self.admin_secret.encode()
            ):
                raise HasuraError(
                    "invalid x-hasura-admin-secret/x-hasura-access-key", "access-denied"
                )
            return {
                "role": headers.get("x-hasura-role", "admin"),
                "user_id": headers.get("x-hasura-user-id"),
            }
        auth = headers.get("authorization")
        if auth is None:
            raise HasuraError(
                "Missing 'Authorization' or 'Cookie' header in JWT authentication mode",
                "access-denied",
            )
        if not auth.startswith("Bearer "):
            raise HasuraError("Malformed Authorization header", "invalid-headers")
        return self._jwt_session(auth.removeprefix("Bearer "), headers.get("x-hasura-role"))

    def _jwt_session(self, token: str, requested_role: str | None) -> dict:
        try:
            claims = jwt.decode(token, self.jwt_key, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            raise HasuraError("Could not verify JWT: JWTExpired", "invalid-jwt") from None
        except jwt.PyJWTError:
            raise HasuraError(
                "Could not verify JWT: JWSError JWSInvalidSignature", "invalid-jwt"
            ) from None
        hasura = claims.get(CLAIMS) or {}
        role = requested_role or hasura.get("x-hasura-default-role")
        if role not in hasura.get("x-hasura-allowed-roles", []):
            raise HasuraError("Your requested role is not in allowed roles", "access-denied")
        if not hasura.get("x-hasura-user-id"):
            raise HasuraError('missing session variable: "x-hasura-user-id"', "not-found")
        return {"role": role, "user_id": hasura["x-hasura-user-id"]}

    def _execute(self, request: dict, session: dict) -> dict:
        if session["role"] not in ("admin", "user"):
            return HasuraError(
                f"no permissions for role {session['role']!r}", "validation-failed"
            ).body()
        with self._lock, contextlib.suppress(_Rollback), self._conn.transaction():
            result = graphql_sync(
                self.schema,
                request["query"],
                variable_values=request.get("variables"),
                operation_name=request.get("operationName"),
                context_value=session,
            )
            if result.errors:
                raise _Rollback()
            return {"data": result.data}
        return {"errors": [_hasura_error(result.errors[0])]}

    # ------------------------------------------------------------ storage
    def _table(self, name: str) -> sql.Composed:
        return sql.Identifier(self.pg_schema, name)

    def _create_tables(self) -> None:
        self._conn.execute(sql.SQL("create schema {}").format(sql.Identifier(self.pg_schema)))
        self.execute(migration_sql())

    def _value(self, table: str, column: str, value: Any) -> sql.Composable:
        if column not in self.columns[table]:
            raise HasuraError(
                f"field '{column}' not found in type: '{table}_insert_input'", "validation-failed"
            )
        pg_type = self.columns[table][column][1]
        wrapped = Jsonb(value) if pg_type == "jsonb" and value is not None else value
        return sql.SQL("{}::{}").format(sql.Literal(wrapped), sql.SQL(pg_type))

    def _visible(self, table: str, session: dict) -> sql.Composable:
        """Return the row filter of role ``user`` (the select/update permission)."""
        if session["role"] == "admin":
            return sql.SQL("true")
        user = sql.Literal(session["user_id"])
        if table == self.docs:
            return sql.SQL("t.user_id = {}::uuid").format(user)
        return sql.SQL(
            "t.document_id in (select d.id from {} as d where d.user_id = {}::uuid)"
        ).format(self._table(self.docs), user)

    def _run(self, query: sql.Composable) -> list[dict]:
        try:
            return self._conn.execute(query).fetchall()
        except psycopg.errors.IntegrityError as exc:
            kind = VIOLATIONS.get(type(exc).__name__, "Integrity violation")
            raise HasuraError(
                f"{kind}. {exc.diag.message_primary}", "constraint-violation"
            ) from None
        except psycopg.errors.DataError as exc:
            raise HasuraError(str(exc.diag.message_primary), "data-exception") from None

    def insert(
        self, table: str, objects: list[dict], on_conflict: dict | None, session: dict
    ) -> list[dict]:
        """Insert (or upsert) rows the way Hasura does, checking role ``user``'s permission."""
        if not objects:
            return []
        columns = [c for c in self.columns[table] if any(c in o for o in objects)]
        values = sql.SQL(", ").join(
            sql.SQL("({})").format(
                sql.SQL(", ").join(
                    self._value(table, c, o[c]) if c in o else sql.DEFAULT for c in columns
                )
            )
            for o in objects
        )
        query = sql.SQL("insert into {} as t ({}) values {} {} returning *").format(
            self._table(table),
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            values,
            self._conflict_clause(table, on_conflict, session),
        )
        rows = self._run(query)
        self._check(table, rows, session)
        return rows

    def _conflict_clause(
        self, table: str, on_conflict: dict | None, session: dict
    ) -> sql.Composable:
        if on_conflict is None:
            return sql.SQL("")
        target = sql.SQL("on conflict on constraint {}").format(
            sql.Identifier(on_conflict["constraint"])
        )
        if not on_conflict["update_columns"]:
            return target + sql.SQL(" do nothing")
        sets = sql.SQL(", ").join(
            sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c))
            for c in on_conflict["update_columns"]
        )
        return target + sql.SQL(" do update set {} where {}").format(
            sets, self._visible(table, session)
        )

    def _check(self, table: str, rows: list[dict], session: dict) -> None:
        if session["role"] == "admin" or not rows:
            return
        ids = [row["id"] for row in rows]
        query = sql.SQL("select count(*) as n from {} as t where id = any({}) and {}").format(
            self._table(table), sql.Literal(ids), self._visible(table, session)
        )
        if self._run(query)[0]["n"] != len(ids):
            raise HasuraError(PERMISSION_FAILED, "permission-error")

    def update_by_pk(
        self, table: str, pk: dict, changes: dict | None, session: dict
    ) -> dict | None:
        """Update one row by id within role ``user``'s filter; None when it is not visible."""
        if not changes:
            return self.select(table, {"id": {"_eq": pk["id"]}}, None, None, session)[0:1] or None
        sets = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), self._value(table, c, v))
            for c, v in changes.items()
        )
        query = sql.SQL("update {} as t set {} where id = {}::uuid and {} returning *").format(
            self._table(table), sets, sql.Literal(pk["id"]), self._visible(table, session)
        )
        rows = self._run(query)
        self._check(table, rows, session)
        return rows[0] if rows else None

    def select(
        self,
        table: str,
        where: dict | None,
        order_by: list | None,
        limit: int | None,
        session: dict,
    ) -> list[dict]:
        """Return the rows matching a Hasura ``where`` (simple comparisons and _and)."""
        query = sql.SQL("select * from {} as t where {} and {}").format(
            self._table(table), self._where(table, where or {}), self._visible(table, session)
        )
        orders = [
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(d))
            for item in order_by or []
            for c, d in item.items()
        ]
        if orders:
            query += sql.SQL(" order by ") + sql.SQL(", ").join(orders)
        if limit is not None:
            query += sql.SQL(" limit {}").format(sql.Literal(limit))
        return self._run(query)

    def _where(self, table: str, where: dict) -> sql.Composable:
        ops = {"_eq": "=", "_neq": "<>", "_gt": ">", "_gte": ">=", "_lt": "<", "_lte": "<="}
        parts: list[sql.Composable] = [sql.SQL("true")]
        for key, condition in where.items():
            if key == "_and":
                parts.extend(self._where(table, sub) for sub in condition)
                continue
            for op, value in condition.items():
                left = sql.Identifier(key)
                if op == "_in":
                    pg_type = sql.SQL(self.columns[table][key][1])
                    parts.append(
                        sql.SQL("{} = any({}::{}[])").format(left, sql.Literal(value), pg_type)
                    )
                else:
                    parts.append(
                        sql.SQL("{} {} {}").format(
                            left, sql.SQL(ops[op]), self._value(table, key, value)
                        )
                    )
        return sql.SQL("(") + sql.SQL(" and ").join(parts) + sql.SQL(")")

    # ------------------------------------------------------------ GraphQL wiring
    def _build_schema(self):
        schema = build_schema(hasura_sdl(self.docs, self.chunks))
        types = schema.type_map
        types["uuid"].parse_value = _valid_uuid
        types["uuid"].parse_literal = lambda node, _v=None: _valid_uuid(
            value_from_ast_untyped(node)
        )
        types["uuid"].serialize = str
        types["jsonb"].parse_literal = value_from_ast_untyped
        types["timestamptz"].serialize = lambda v: v.isoformat() if hasattr(v, "isoformat") else v
        for table in (self.docs, self.chunks):
            self._wire_table(schema, table)
        types[self.docs].fields["chunks"].resolve = lambda doc, info, order_by=None: self.select(
            self.chunks,
            {"document_id": {"_eq": doc["id"]}},
            order_by or [{"chunk_index": "asc"}],
            None,
            info.context,
        )
        types[self.chunks].fields["document"].resolve = lambda chunk, info: self.select(
            self.docs, {"id": {"_eq": chunk["document_id"]}}, None, None, info.context
        )[0]
        return schema

    def _wire_table(self, schema, table: str) -> None:
        mutation, query = schema.mutation_type.fields, schema.query_type.fields
        mutation[f"insert_{table}"].resolve = lambda _o, info, objects, on_conflict=None: _response(
            self.insert(table, objects, on_conflict, info.context)
        )
        mutation[f"insert_{table}_one"].resolve = lambda _o, info, object, on_conflict=None: (
            self.insert(table, [object], on_conflict, info.context) or [None]
        )[0]
        mutation[f"update_{table}_by_pk"].resolve = lambda _o, info, pk_columns, _set=None: (
            self.update_by_pk(table, pk_columns, _set, info.context)
        )
        query[table].resolve = lambda _o, info, where=None, order_by=None, limit=None: self.select(
            table, where, order_by, limit, info.context
        )
        query[f"{table}_by_pk"].resolve = lambda _o, info, id: (
            self.select(table, {"id": {"_eq": id}}, None, None, info.context) or [None]
        )[0]


class _Rollback(Exception):
    pass


def _response(rows: list[dict]) -> dict:
    return {"affected_rows": len(rows), "returning": rows}


def _hasura_error(error: GraphQLError) -> dict:
    original = error.original_error
    if isinstance(original, HasuraError):
        code, message = original.code, original.message
    else:  # parse, validation and variable errors carry no path; anything else is a bug
        code, message = ("validation-failed" if error.path is None else "unexpected"), error.message
    path = "$" + "".join(f".{p}" for p in (error.path or []))
    return {"message": message, "extensions": {"path": path, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body, extra = self.server.hasura.respond(self.path, headers, raw)  # type: ignore[attr-defined]
        if status == 0:
            self.close_connection = True
            return
        payload = json.dumps(body, default=str).encode()
        self.send_response(status)
        for name, value in {**extra, "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def serve_hasura(
    *,
    admin_secret: str = ADMIN_SECRET,
    jwt_key: str = JWT_KEY,
    dsn: str = PG_DSN,
) -> Iterator[tuple[str, HasuraServer]]:
    """Serve a Hasura-like GraphQL API on 127.0.0.1 (ephemeral port); yield (url, server)."""
    hasura = HasuraServer(admin_secret, jwt_key, dsn)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.hasura = hasura  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, name="hasura-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", hasura
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
        hasura.close()
