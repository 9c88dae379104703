"""Read models and their runners. Nothing is here yet: projections are the next issues' work."""
