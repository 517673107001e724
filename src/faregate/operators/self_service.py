"""What a signed-in operator does to their own account: change their password."""

from __future__ import annotations

import asyncio
import functools

import sqlalchemy as sa

from faregate.audit import trail
from faregate.db.runner import Database
from faregate.errors import InvalidRequest
from faregate.identity.passwords import check_password_policy, hash_password, verify_password
from faregate.operators import accounts
from faregate.operators.rules import OperatorRules
from faregate.operators.sessions import OperatorPrincipal
from faregate.operators.signin import count_attempt


def _start(conn: sa.Connection, principal: OperatorPrincipal, *, ip: str,
           rules: OperatorRules, secret: bytes) -> str:
    # Guessing the current password counts against the same limits as signing in.
    count_attempt(conn, principal.email, ip, rules=rules, secret=secret)
    return accounts.password_hash_of(conn, principal.operator_id)


def _check_and_hash(on_file: str, current: str, new: str) -> str | None:
    return hash_password(new) if verify_password(on_file, current) else None


def _finish(conn: sa.Connection, principal: OperatorPrincipal, *, on_file: str,
            new_hash: str | None, ip: str) -> bool:
    if new_hash is None:
        trail.record(conn, action="operator.password_change_failed", actor=principal.actor,
                     target=principal.operator_id, ip=ip)
        return False
    return accounts.set_password(conn, principal.operator_id, new_hash, actor=principal.actor,
                                 ip=ip, keep_session_id=principal.session_id,
                                 expected_hash=on_file)


async def change_password(db: Database, principal: OperatorPrincipal, *, current_password: str,
                          new_password: str, ip: str, rules: OperatorRules,
                          secret: bytes) -> None:
    """Check the current password and the policy, store the new one, end the operator's
    other sessions; InvalidRequest (committed as a failed attempt) when the current password
    is wrong."""
    check_password_policy(new_password, min_length=rules.password_min_length,
                          email=principal.email)
    on_file = await db.run(functools.partial(_start, principal=principal, ip=ip, rules=rules,
                                             secret=secret))
    new_hash = await asyncio.to_thread(_check_and_hash, on_file, current_password,
                                       new_password)
    if not await db.run(functools.partial(_finish, principal=principal, on_file=on_file,
                                          new_hash=new_hash, ip=ip)):
        raise InvalidRequest("Your current password is not correct.", param="current_password",
                             code="incorrect_password")
