"""/v1: key -> reserve -> upstream -> meter -> settle. The hot path: plain ASGI and orjson."""
