"""motcua: the command line and the one-process composition of the three services."""
