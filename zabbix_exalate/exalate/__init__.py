"""The Exalate node's side: HTTP transport, credentials and login, the API calls, streaming JSON, connection names."""
