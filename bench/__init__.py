"""The benchmark suite: real processes on 127.0.0.1, same-run baselines, ratios."""
