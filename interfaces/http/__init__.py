"""The HTTP API (Starlette): parse and validate, call one use case, shape the answer."""
