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
SERVER_ADDRESS = "127.0.0.1"  # the app is only ever served on loopback
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")  # the Host headers it answers (ui/asgi.py)


def default_index_dir() -> Path:
    return platformdirs.user_data_path("papersift") / "index"


def default_lists_path() -> Path:
    """Reading lists: one per-user database beside the default index, outside any generation."""
    return platformdirs.user_data_path("papersift") / "lists.sqlite"


@dataclass(frozen=True)
class Settings:
    """Where the index and the reading lists live, which model encodes queries (None: the
    packaged default) and which addresses the fetchers use ("": the service's own, so a
    search does not import the fetchers)."""

    index: Path
    model: str | None = None
    lists: Path = Path()
    arxiv_url: str = ""
    oai_url: str = ""
    hf_url: str = ""
    hf_token: str = ""

    @classmethod
    def load(
        cls,
        index: str | Path | None = None,
        model: str | None = None,
        env: Mapping[str, str] | None = None,
        *,
        arxiv_url: str | None = None,
        oai_url: str | None = None,
        hf_url: str | None = None,
        lists: str | Path | None = None,
    ) -> Settings:
        env = os.environ if env is None else env
        chosen = index or env.get("PAPERSIFT_INDEX") or default_index_dir()
        return cls(
            index=Path(chosen).expanduser(),
            model=model or env.get("PAPERSIFT_MODEL") or None,
            lists=Path(lists or env.get("PAPERSIFT_LISTS") or default_lists_path()).expanduser(),
            arxiv_url=arxiv_url or env.get("PAPERSIFT_ARXIV_URL") or "",
            oai_url=oai_url or env.get("PAPERSIFT_OAI_URL") or "",
            hf_url=hf_url or env.get("PAPERSIFT_HF_URL") or "",
            hf_token=env.get("HF_TOKEN", ""),
        )

    def source_url(self, source: str) -> str:
        """The address fetches from `source` ("arxiv", "oai", "hf") use: the one given,
        else the service's own (imported only here, so a search never loads the fetchers)."""
        given = getattr(self, f"{source}_url")
        if given:
            return given
        if source == "hf":
            from indexer.hf import HF_DAILY_URL

            return HF_DAILY_URL
        from indexer.arxiv import ARXIV_API_URL, ARXIV_OAI_URL

        return ARXIV_API_URL if source == "arxiv" else ARXIV_OAI_URL

    def environment(self) -> dict[str, str]:
        """These settings as PAPERSIFT_* variables, for a child process such as the app."""
        env = {"PAPERSIFT_INDEX": str(self.index), "PAPERSIFT_LISTS": str(self.lists)}
        if self.model:
            env["PAPERSIFT_MODEL"] = self.model
        return env


def server_flags(port: int) -> list[str]:
    """`streamlit run` flags for the app on SERVER_ADDRESS:port.

    Flags outrank every Streamlit config file and STREAMLIT_* variable, so a user's config
    cannot turn off XSRF protection or CORS protection (`enableCORS=true` means protection
    on), nor let WebSocket connections in under another Host name.
    """
    hosts = [arg for host in LOOPBACK_HOSTS for arg in ("--server.allowedHosts", host)]
    return [
        "--server.address", SERVER_ADDRESS, "--server.port", str(port),
        "--server.enableXsrfProtection", "true", "--server.enableCORS", "true", *hosts,
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal", "--server.fileWatcherType", "none",
        # an unexpected error shows its type, not a traceback with search-engine links;
        # the details go to the terminal
        "--client.showErrorDetails", "type",
    ]
