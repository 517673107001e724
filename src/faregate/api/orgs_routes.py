"""/api endpoints: orgs."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
