"""HTTP plumbing around the GraphQL app: ASGI middleware."""
