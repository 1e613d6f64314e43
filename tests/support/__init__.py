"""Test support shared by the suite and `make demo`: model wheels and a local mirror."""
