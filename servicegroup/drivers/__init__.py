"""Service group drivers, found through the ``servicegroup.drivers`` entry points."""
