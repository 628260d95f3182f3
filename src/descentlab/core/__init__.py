"""The ground floor: what every layer uses, importing nothing of the package above it.

``status`` (the particle status enum), ``rng`` (the counter-based Philox RNG), ``tables``
(spec tables: SpecError and validation by the owner's pydantic model),
``schedules`` (learning-rate schedule factors and optimizer phases), ``identity`` (the
identity of compiled code), ``hdf5`` (safety checks on HDF5 input files). Modules here
import only NumPy, Numba, h5py, pydantic and :mod:`descentlab._jit` / :mod:`descentlab._version`.
"""
