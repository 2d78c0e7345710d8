"""The OpenAI-compatible server for the package's models (`iquest serve`) and the one client for any
OpenAI-compatible endpoint (`ChatClient`)."""

from iquest_core.serve.client import ChatClient, EndpointError

__all__ = ["ChatClient", "EndpointError"]
