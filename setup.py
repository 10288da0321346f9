"""minicnn: a from-scratch NumPy/CuPy framework for learning the classic convolutional networks."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def version():
    for line in (HERE / "minicnn" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=")[1].strip().strip("\"'")
    raise RuntimeError("minicnn/__init__.py has no __version__")


setup(
    name="minicnn",
    version=version(),
    description="Learn the classic CNNs (AlexNet, VGG, ResNet, Inception-v3, SENet) by reading, running "
    "and gradient-checking every piece: autograd and im2col convolution in NumPy/CuPy.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["minicnn", "minicnn.*"]),
    package_data={"minicnn.data": ["*.npz"]},
    include_package_data=True,
    install_requires=[
        "numpy>=1.24",
        "matplotlib>=3.6",
        "tqdm>=4.60",
        "threadpoolctl>=3.1",      # `minicnn train --threads N`: the BLAS library's thread count
    ],
    extras_require={
        # CuPy ships one wheel per CUDA major version: cupy-cuda12x for CUDA 12.x, cupy-cuda13x for
        # CUDA 13.x (cupy-cuda11x for CUDA 11.2+). The `gpu` extra picks CUDA 12; on a CUDA 13 machine
        # run `pip install cupy-cuda13x` instead. See README.md, "GPU".
        "gpu": ["cupy-cuda12x>=13"],
        # mpi4py + the mpich wheel: a working MPI (and mpiexec) without system packages, so that CI runs the
        # `mpiexec -n 2` tests of minicnn.distributed;
        # numba too, so that CI runs the compiled CPU kernels (minicnn.cpu) as well as the NumPy path.
        "test": ["pytest>=7", "hypothesis>=6", "jupytext>=1.14", "mpi4py>=3.1", "mpich", "numba>=0.59"],
        # numba compiles minicnn.cpu's kernels (depthwise conv, batch norm): faster training on the CPU.
        # Without it those ops take their NumPy path (the same numbers up to rounding).
        "cpu": ["numba>=0.59"],
        # Data-parallel training (minicnn.distributed, `minicnn train --distributed`): MPI through mpi4py.
        # With a system MPI (Open MPI, Intel MPI, a cluster's MPICH) install mpi4py alone, built against it.
        "distributed": ["mpi4py>=3.1", "mpich"],
        # Pillow decodes image files for minicnn.data.ImageFolder; nothing else needs it.
        "images": ["Pillow>=9"],
        # jupytext turns the percent-format lessons into .ipynb notebooks (lessons/README.md).
        "notebooks": ["jupytext>=1.14"],
    },
    entry_points={"console_scripts": ["minicnn=minicnn.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Intended Audience :: Education",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
