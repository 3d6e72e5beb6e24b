"""The approvals room of the console."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
