"""一件事 bundles: several items applied for with one form, one checklist, one submission."""
