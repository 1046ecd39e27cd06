"""Model providers: OpenRouter (or any OpenAI-compatible server) and the offline model."""
