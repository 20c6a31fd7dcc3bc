"""Several processes: the bus seam and its Redis implementation."""
