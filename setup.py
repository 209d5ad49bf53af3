"""Build varcas and its one private C extension, varcas._timing.

VARCAS_SANITIZE=1 builds the extension with AddressSanitizer and UBSan (for CI's C-core
test step; run Python with LD_PRELOAD=$(gcc -print-file-name=libasan.so)).
VARCAS_DEBUG=1 builds without optimisation and with asserts.
Reference data (GPU specs, model configs, workloads, corpus) lives in varcas/data/.
"""
import os

from setuptools import Extension, find_packages, setup

extra_compile = ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
extra_link = []
undef = []
if os.environ.get("VARCAS_SANITIZE") == "1":
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    extra_compile += san + ["-O1", "-g"]
    extra_link += san
    undef = ["NDEBUG"]
elif os.environ.get("VARCAS_DEBUG") == "1":
    extra_compile += ["-O0", "-g"]
    undef = ["NDEBUG"]
else:
    extra_compile += ["-O2"]

timing = Extension(
    "varcas._timing",
    sources=["csrc/timingmodule.c", "csrc/httpsse.c", "csrc/jsonscan.c"],
    include_dirs=["csrc"],
    extra_compile_args=extra_compile,
    extra_link_args=extra_link,
    undef_macros=undef,
)

packages = find_packages(include=["varcas", "varcas.*"])

setup(
    packages=packages,
    package_data={"varcas": ["py.typed", "*.pyi", "data/*", "data/**/*"]},
    ext_modules=[timing],
)
