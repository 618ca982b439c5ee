"""Reform plans shipped with motcua (data files, see metrics.targets)."""
