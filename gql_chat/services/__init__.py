"""The product's rules. No GraphQL here: services take plain values and raise domain errors."""
