"""Live delivery: the reply-stream registry (replay + follow) and the per-user event bus."""
