"""MongoDB access: one repository per collection; every query of a user's data filters by owner."""
