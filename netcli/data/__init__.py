"""Data sources (IDX, npz, HDF5, image folders, named datasets), transforms and fetchers."""
