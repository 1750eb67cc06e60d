"""Developer tools (benchmarks, evaluation, conversion); importable as ``tools.*`` from the repo root."""
