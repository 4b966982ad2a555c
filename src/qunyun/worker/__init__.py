"""Durable jobs: the queue (enqueue in the caller's transaction) and the workers that run them."""
