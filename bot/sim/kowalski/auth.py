"""Kowalski's authentication, as the stand-in does it: HS256 JWTs and `POST /api/auth` (username, password,
penquins version)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

PENQUINS_VERSIONS = ((2, 0, 0), (2, 4, 2))  # the client versions Kowalski accepts


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_jwt(payload: dict, secret: str) -> str:
    """An HS256 JWT (what Kowalski issues), made with the standard library."""
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(sig)}"


def verify_jwt(token: str, secret: str) -> bool:
    parts = token.split(".")
    if len(parts) != 3:
        return False
    sig = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(_b64url(sig), parts[2])


def jwt_payload(token: str) -> dict:
    """The payload of a (verified) JWT; {} if it cannot be read."""
    try:
        body = token.split(".")[1]
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


def check_login(users: dict[str, str], data: dict) -> tuple[int, str] | str:
    """`POST /api/auth`: the username on success, else (HTTP status, message) as Kowalski's login handler
    returns them (handlers/user.py:496-578); the 401 reaches the client as "Unauthorized" (handler.py)."""
    for field in ("username", "password"):
        if not data.get(field):
            return 400, f"missing {field}"
    if "penquins.__version__" in data:
        version = data["penquins.__version__"]
        try:
            ok = PENQUINS_VERSIONS[0] <= tuple(int(x) for x in str(version).split(".")) <= PENQUINS_VERSIONS[1]
        except ValueError:
            ok = False
        if not ok:
            return 400, f"unsupported version of penquins: {version}"
    user, password = str(data["username"]), str(data["password"])
    if user not in users or not hmac.compare_digest(users[user], password):
        return 401, "wrong credentials"
    return user
