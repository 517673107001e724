"""The worker forgets sessions and emailed links long ended, and keeps the rest."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from faregate.db.schema import email_tokens, sessions
from faregate.identity.email_tokens import issue_email_token, prune_email_tokens
from faregate.identity.sessions import create_session, prune_sessions, revoke
from faregate.identity.users import create_user

SECRET = b"s"


def test_prune_sessions_and_links(engine: Engine) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=31)
    with engine.begin() as conn:
        user = create_user(conn, "prune@example.com")
        live, _ = create_session(conn, user_id=user.id, ip=None, user_agent=None, ttl_s=3600,
                                 secret=SECRET)
        expired, _ = create_session(conn, user_id=user.id, ip=None, user_agent=None,
                                    ttl_s=3600, secret=SECRET)
        ended, _ = create_session(conn, user_id=user.id, ip=None, user_agent=None, ttl_s=3600,
                                  secret=SECRET)
        revoke(conn, ended)
        conn.execute(sessions.update().where(sessions.c.id == expired).values(expires_at=old))
        conn.execute(sessions.update().where(sessions.c.id == ended).values(revoked_at=old))
        issue_email_token(conn, user_id=user.id, email=user.email, purpose="verify",
                          ttl_s=3600, secret=SECRET)
        conn.execute(email_tokens.update().values(expires_at=old))
        issue_email_token(conn, user_id=user.id, email=user.email, purpose="reset",
                          ttl_s=3600, secret=SECRET)
    with engine.begin() as conn:
        assert prune_sessions(conn) == 2
        assert prune_email_tokens(conn) == 1
        assert conn.execute(sa.select(sessions.c.id)).scalars().all() == [live]
        assert conn.execute(sa.select(email_tokens.c.purpose)).scalars().all() == ["reset"]
