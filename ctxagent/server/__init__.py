"""`ctxagent serve`: an OpenAI-compatible HTTP API over ctxagent's recipes (FastAPI + uvicorn).

    ctxagent serve --port 8000                   # embedded model; `pip install "ctxagent[serve]"`
    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    client.chat.completions.create(model="ctxagent/auto", messages=[
        {"role": "system", "content": long_document},
        {"role": "user", "content": "What was the Q3 revenue?"},
    ])

FastAPI and uvicorn are imported only here, when a server is built. See docs/serve.md.
"""

from __future__ import annotations

from ctxagent.server.app import ServerSettings, create_app
from ctxagent.server.run import RunningServer, running_server, serve

__all__ = ["RunningServer", "ServerSettings", "create_app", "running_server", "serve"]
