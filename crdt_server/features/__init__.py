"""Features built on the core, one package each."""
