"""Configuration in one place: flags, then PAPERSIFT_* environment variables, then defaults.

Only the edges (the CLI and the app) build a `Settings`; deeper code is handed values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

BUNDLED_CORPUS = Path(__file__).resolve().parent.parent / "data" / "demo-arxiv-2k.jsonl"


def default_index_dir() -> Path:
    return platformdirs.user_data_path("papersift") / "index"


@dataclass(frozen=True)
class Settings:
    """Where the index lives and which model encodes queries (None: the packaged default)."""

    index: Path
    model: str | None = None

    @classmethod
    def load(
        cls,
        index: str | Path | None = None,
        model: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        env = os.environ if env is None else env
        chosen = index or env.get("PAPERSIFT_INDEX") or default_index_dir()
        return cls(
            index=Path(chosen).expanduser(),
            model=model or env.get("PAPERSIFT_MODEL") or None,
        )

    def environment(self) -> dict[str, str]:
        """These settings as PAPERSIFT_* variables, for a child process such as the app."""
        env = {"PAPERSIFT_INDEX": str(self.index)}
        if self.model:
            env["PAPERSIFT_MODEL"] = self.model
        return env
