"""engine: where `inspect` runs its batches besides this process — a pool of Ray workers
(:mod:`defectlens.engine.ray_engine`, imported only when asked for: Ray is an optional extra)."""
