"""The orchestration patterns built on the engine: agents, supervisors (hierarchy), spawning, workflow files."""
