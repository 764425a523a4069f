"""The engine: schedules a plan's steps, keeps the run's state, and is the single writer of the store."""
