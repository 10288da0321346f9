"""CUDA kernels (CuPy ``RawModule`` sources) and their launch code.

Each module here holds the CUDA C++ source of a few kernels as a string and the Python that
launches them on CuPy arrays. CuPy is reached only through ``minicnn.backend.cupy()``, at call time,
so importing these modules never needs CuPy or a GPU.
"""
