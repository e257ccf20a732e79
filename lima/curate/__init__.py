"""LIMA's curation: read each source layout, apply the paper's rules, deduplicate, select.

The library is a chain of small generator steps over plain dicts (docs and rejections), each
counting what it does in a `Stats`; `pipeline.py` runs the per-file part as Ray tasks and the
cross-source part (dedup, splits, diversity selection) on the driver.
"""
