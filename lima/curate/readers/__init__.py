"""One reader per source layout. Each yields docs and rejections (see `lima.curate.records`)."""
