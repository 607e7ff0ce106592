"""ferry.progress."""
