"""A run's life: the runner, the flow base, the state store, checkpoints, pause/resume, rollback, the hook path."""
