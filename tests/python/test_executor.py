"""ferry.Executor where code expects a concurrent.futures.Executor."""
