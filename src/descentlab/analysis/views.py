"""Views for D > 2 and for models (registered analyses): placeholder, filled below."""

from __future__ import annotations
