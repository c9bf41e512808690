"""engine: where `inspect` runs its batches. :mod:`defectlens.engine.local` inspects and writes
one batch (this process, and each Ray worker) with the optional stages of
:mod:`defectlens.engine.analysis` (types, reports; the service uses them too);
:mod:`defectlens.engine.ray_engine` spreads the batches over a pool of Ray workers (imported only
when asked for: Ray is an optional extra)."""
