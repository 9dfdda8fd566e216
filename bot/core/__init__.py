"""The pure core: triplets, features, policies. Functions over batches of plain dicts and arrays; no I/O."""
