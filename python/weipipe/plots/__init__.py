"""Pictures of timelines, loss curves and schedule comparisons (README.md)."""
