"""CUDA kernels (CuPy ``RawModule`` sources) and their launch code.

Each module here holds the CUDA C++ source of a few kernels as a string and the Python that
launches them on CuPy arrays. CuPy is reached only through ``minicnn.backend.cupy()``, at call time,
so importing these modules never needs CuPy or a GPU.

    im2col_kernels   im2col, col2im (a gather)                       used by functional/im2col.py
    pool_kernels     max pooling forward, backward (a gather)        used by functional/pool.py
    norm_kernels     batch norm's elementwise passes (+ fused ReLU),
                     local response norm forward and backward        used by functional/norm.py
    loss_kernels     softmax cross-entropy forward and backward      used by functional/loss.py
    launch           kernels_apply (when the ops take these paths), compiled-module cache, launch geometry

Every kernel maps one thread to one output element (or row) with a grid-stride loop, uses 64-bit
indices, and has no atomics, shared memory or __syncthreads: results are deterministic, and
tests/cuda_emulator.py can run the same source on the CPU, compiled with g++, thread by thread.
That emulator and nvcc compile checks (tests/test_cuda_kernels.py) are how the kernels are verified
on machines without a GPU; they have not yet run on one.
"""
