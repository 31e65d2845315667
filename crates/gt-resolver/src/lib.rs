//! Find a consistency case's ground-truth files: official first, then ours, then legacy; tri-state HTTP probes with backoff; a verified on-disk cache.
