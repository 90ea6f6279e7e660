"""Training TCM models: data, losses, the resumable training loop, distributed runs."""
