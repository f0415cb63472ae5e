"""One module per group of ratios; each `run(stack, out)` appends Results to `out`."""
