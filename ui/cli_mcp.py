"""`papersift mcp`: serve the index to an AI assistant (Claude Desktop, Cursor ...) over MCP."""

from __future__ import annotations

from ui.cli_explore import ListsOpt
from ui.clikit import IndexOpt, ModelOpt
from ui.settings import Settings


def mcp(index: IndexOpt = None, model: ModelOpt = None, lists: ListsOpt = None) -> None:
    """Serve search to an AI assistant over MCP on stdin/stdout (read-only tools).

    The index is opened and the model loaded before the protocol starts, so a missing or
    damaged index is one line on stderr and exit 1, not a broken session.
    """
    from ui.mcp_server import run_stdio

    settings = Settings.load(index, model, lists=lists)
    run_stdio(settings.index, settings.model, lists=settings.lists)
