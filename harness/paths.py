"""Where the lab's own files are: the one definition of the project root."""

from __future__ import annotations

from pathlib import Path

# The checkout: scenarios/, fixtures/, reports/, .tools/, .cache/ live under it.
ROOT = Path(__file__).resolve().parents[1]
