"""Truck passages and release time (SPEC 9): plate reads in, passages out."""
