"""Reading other apps' exports (and our own) into conversation trees to store."""
