"""The web UI and the HTTP/WebSocket APIs, served by hypercorn's trio worker inside the node."""
