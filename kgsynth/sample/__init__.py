"""Path samplers and hard-negative selection."""
