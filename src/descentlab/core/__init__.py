"""The ground floor: what every layer uses, importing nothing of the package above it.

``status`` (the particle status enum), ``rng`` (the counter-based Philox RNG),
``schedules`` (learning-rate schedule factors and optimizer phases), ``hdf5``
(safety checks on HDF5 input files). Modules here import only NumPy, Numba,
h5py and :mod:`descentlab._jit`.
"""
