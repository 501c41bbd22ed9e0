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
    try:
        run_stdio(settings.index, settings.model, lists=settings.lists)
    except BaseExceptionGroup as group:  # the client went away mid-answer: a normal end
        _, rest = group.split((BrokenPipeError, ConnectionResetError))
        if rest is not None:
            raise rest from None
        _quiet_stdout()
    except (BrokenPipeError, ConnectionResetError):
        _quiet_stdout()


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush to a closed pipe is silent."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
