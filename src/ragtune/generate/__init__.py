"""Generation: the base model (loaded offline, cached), and the backends that generate with it."""
