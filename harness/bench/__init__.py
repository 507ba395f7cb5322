"""`harness bench server`: the reference façade's speed against Azurite and nginx, in one run."""
