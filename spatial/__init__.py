"""OGC API serving: the features provider, CQL2 filters, vector tiles, collections described from
the catalog."""
