"""Target adapters: the CPU block kernel, the CUDA kernel, the RNG, compilation."""
