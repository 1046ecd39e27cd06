"""GraphQL only: Strawberry types and thin resolvers that call services."""
