"""Bare baselines started beside the portal: the ceiling each ratio is measured against."""
