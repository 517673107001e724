"""The emails accounts send. Built here, returned by the services, sent after the commit."""

from __future__ import annotations

import datetime as dt

from faregate.notify.email import EmailMessage


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        n, unit = seconds // 86400, "day"
    elif seconds % 3600 == 0:
        n, unit = seconds // 3600, "hour"
    else:
        n, unit = max(1, seconds // 60), "minute"
    return f"{n} {unit}{'s' if n != 1 else ''}"


def verification_email(to: str, link: str, ttl_s: int) -> EmailMessage:
    return EmailMessage(to, "Verify your email address for Faregate", (
        "Welcome to Faregate!\n\n"
        "Please confirm that this is your email address by opening this link:\n\n"
        f"{link}\n\n"
        f"The link works once and expires in {_duration(ttl_s)}. If you did not create a "
        "Faregate account, you can ignore this email.\n"))


def reset_email(to: str, link: str, ttl_s: int) -> EmailMessage:
    return EmailMessage(to, "Reset your Faregate password", (
        "Someone (hopefully you) asked to reset the password of your Faregate account.\n\n"
        "To choose a new password, open this link:\n\n"
        f"{link}\n\n"
        f"The link works once and expires in {_duration(ttl_s)}. If you did not ask for this, "
        "you can ignore this email: your password stays as it is.\n"))


def password_changed_email(to: str, when: dt.datetime, ip: str | None) -> EmailMessage:
    where = f" from the address {ip}" if ip else ""
    return EmailMessage(to, "Your Faregate password was changed", (
        f"The password of your Faregate account was changed on "
        f"{when.strftime('%Y-%m-%d at %H:%M UTC')}{where}. Your other sessions were signed "
        "out.\n\n"
        "If this was not you, reset your password right away from the sign-in page.\n"))


def invitation_email(to: str, *, organization: str, inviter: str, role: str, link: str,
                     ttl_s: int) -> EmailMessage:
    return EmailMessage(to, f"You are invited to join {organization} on Faregate"[:200], (
        f"{inviter} invited you to join the organization \"{organization}\" on Faregate "
        f"as {'an owner' if role == 'owner' else 'a member'}.\n\n"
        "To accept, sign in (or sign up) with this email address and open this link:\n\n"
        f"{link}\n\n"
        f"The invitation expires in {_duration(ttl_s)}.\n"))
