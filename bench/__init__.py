"""`make bench`: side-by-side ratios of the portal against bare baselines, in one run (bench/README.md)."""
