"""fitwire component."""
