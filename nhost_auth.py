"""Decide who an Nhost push writes for: verify Nhost access tokens and trusted API keys.

NHOST_JWT_SECRET is parsed as Nhost publishes it (a fixed key, a certificate or a JWKS URL);
a verified token's ``x-hasura-user-id`` is the user a push writes for.
"""

from __future__ import annotations

import functools
import hmac
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509

import errors
from config import Settings, split_list

DEFAULT_CLAIMS_NAMESPACE = "https://hasura.io/jwt/claims"
SUPPORTED_ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384")


class InvalidToken(errors.AuthError):
    code = "invalid_token"
    default_message = "The Nhost access token is not valid."


class TokenExpired(errors.AuthError):
    code = "token_expired"
    default_message = "The Nhost access token has expired; refresh it and retry."


class ForbiddenUser(errors.ExtractorError):
    code = "forbidden_user"
    status = 403
    default_message = "This caller may not write documents for that user."


class NhostNotConfigured(errors.ServiceUnavailable):
    code = "nhost_not_configured"
    default_message = "Nhost is not configured on this server."


class NhostKeysUnavailable(errors.ServiceUnavailable):
    code = "nhost_keys_unavailable"
    default_message = "Nhost's token signing keys could not be fetched. Please retry shortly."


@dataclass(frozen=True)
class NhostIdentity:
    """Who a push writes for: a user id, and their token (None = use the admin secret)."""

    user_id: str | None = None
    token: str | None = field(default=None, repr=False)

    @property
    def uses_admin_secret(self) -> bool:
        """Return True when writes go with the admin secret rather than a user token."""
        return self.token is None


@dataclass(frozen=True)
class JwtSpec:
    """NHOST_JWT_SECRET, parsed: how to check a token and where its Hasura claims are."""

    algorithm: str
    key: Any = field(repr=False)
    jwk_url: str | None
    namespace: str
    stringified: bool
    audience: str | list[str] | None
    issuer: str | None
    leeway: float


def resolve_nhost_identity(
    settings: Settings, api_key: str | None, bearer_token: str | None, form_user_id: str | None
) -> NhostIdentity:
    """Decide whose rows a push writes and with which credentials; raise 401/403 errors."""
    form_user_id = (form_user_id or "").strip() or None
    if bearer_token:
        user_id = verify_nhost_token(settings, bearer_token)
        if form_user_id is not None and form_user_id.lower() != user_id.lower():
            raise ForbiddenUser("The user_id field is not the user of the Nhost access token.")
        return NhostIdentity(user_id=user_id, token=bearer_token)
    if form_user_id is None:
        return NhostIdentity()
    if not _is_trusted_key(settings, api_key):
        raise ForbiddenUser(
            "Only a trusted API key may set user_id; send the user's Nhost access token instead."
        )
    return NhostIdentity(user_id=_valid_user_id(form_user_id))


def verify_nhost_token(settings: Settings, token: str) -> str:
    """Verify an Nhost access token against NHOST_JWT_SECRET and return its Hasura user id."""
    try:
        spec = parse_jwt_secret(settings.nhost_jwt_secret)
    except ValueError as exc:
        raise NhostNotConfigured("This server cannot verify Nhost access tokens.") from exc
    try:
        claims = jwt.decode(token, _verification_key(spec, token), **_decode_options(spec))
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired() from exc
    except jwt.PyJWKClientConnectionError as exc:
        raise NhostKeysUnavailable() from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken() from exc
    return _hasura_user_id(claims, spec)


def _is_trusted_key(settings: Settings, api_key: str | None) -> bool:
    if not api_key:
        return False
    given = api_key.encode()
    return any(
        hmac.compare_digest(given, key.encode()) for key in split_list(settings.trusted_api_keys)
    )


def _valid_user_id(user_id: str) -> str:
    try:
        return str(uuid.UUID(user_id))
    except ValueError:
        raise errors.InvalidField("user_id must be the Nhost user's id (a UUID).") from None


def _verification_key(spec: JwtSpec, token: str) -> Any:
    if spec.jwk_url:
        return _jwk_client(spec.jwk_url).get_signing_key_from_jwt(token).key
    return spec.key


def _decode_options(spec: JwtSpec) -> dict[str, Any]:
    return {
        "algorithms": [spec.algorithm],
        "audience": spec.audience,
        "issuer": spec.issuer,
        "leeway": spec.leeway,
        "options": {"require": ["exp"], "verify_aud": spec.audience is not None},
    }


def _hasura_user_id(claims: dict[str, Any], spec: JwtSpec) -> str:
    hasura = claims.get(spec.namespace)
    if spec.stringified and isinstance(hasura, str):
        try:
            hasura = json.loads(hasura)
        except ValueError:
            hasura = None
    lowered = {str(k).lower(): v for k, v in hasura.items()} if isinstance(hasura, dict) else {}
    user_id = lowered.get("x-hasura-user-id")
    if not user_id or not isinstance(user_id, str):
        raise InvalidToken("The Nhost access token carries no x-hasura-user-id claim.")
    return user_id


@functools.lru_cache(maxsize=4)
def _jwk_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)


@functools.lru_cache(maxsize=8)
def parse_jwt_secret(raw: str | None) -> JwtSpec:
    """Parse NHOST_JWT_SECRET as Nhost publishes it; ValueError messages never quote the key."""
    if not raw:
        raise ValueError("NHOST_JWT_SECRET is not set.")
    try:
        conf = json.loads(raw)
    except ValueError:
        raise ValueError(
            'NHOST_JWT_SECRET is not JSON like {"type":"HS256","key":"..."}.'
        ) from None
    if not isinstance(conf, dict):
        raise ValueError("NHOST_JWT_SECRET must be a JSON object.")
    jwk_url = conf.get("jwk_url") or None
    algorithm = conf.get("type") or ("RS256" if jwk_url else None)
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise ValueError(f"NHOST_JWT_SECRET type must be one of {', '.join(SUPPORTED_ALGORITHMS)}.")
    return JwtSpec(
        algorithm=algorithm,
        key=None if jwk_url else _prepared_key(algorithm, conf.get("key")),
        jwk_url=jwk_url,
        namespace=conf.get("claims_namespace") or DEFAULT_CLAIMS_NAMESPACE,
        stringified=conf.get("claims_format") == "stringified_json",
        audience=conf.get("audience"),
        issuer=conf.get("issuer"),
        leeway=float(conf.get("allowed_skew") or 0),
    )


def _prepared_key(algorithm: str, key: Any) -> Any:
    if not isinstance(key, str) or not key:
        raise ValueError('NHOST_JWT_SECRET needs a "key" (or a "jwk_url").')
    if key.lstrip().startswith("-----BEGIN CERTIFICATE"):
        try:
            return x509.load_pem_x509_certificate(key.encode()).public_key()
        except ValueError:
            raise ValueError("NHOST_JWT_SECRET key is not a readable certificate.") from None
    try:
        return jwt.get_algorithm_by_name(algorithm).prepare_key(key)
    except (ValueError, TypeError, jwt.PyJWTError):
        raise ValueError(f"NHOST_JWT_SECRET key is not a valid {algorithm} key.") from None
