"""The web layer every feature builds on: operations, request/response types, auth, OpenAPI."""
