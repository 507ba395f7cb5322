"""Header names shared by the handlers and the copy machinery (which reads a source's headers)."""

from __future__ import annotations

META_PREFIX = "x-ms-meta-"  # user metadata: x-ms-meta-<name>: <value>
