"""metrics: projects the case log into KPI aggregates and serves them."""
