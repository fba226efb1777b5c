"""Writes the golden .npy files used by the Go tests.

Run once with numpy installed (python3 make.py); the outputs are committed so
the Go tests need no Python. Values are simple so the tests can rebuild them.
"""
import numpy as np
from numpy.lib import format as npf


def base(n):
    # 0.25*i - 0.5: exact in float32 and float64.
    return np.arange(n, dtype=np.float32) * np.float32(0.25) - np.float32(0.5)


np.save("f32_2x3.npy", base(6).reshape(2, 3))
np.save("f32_5.npy", base(5))
np.save("f32_scalar.npy", np.array(3.5, dtype=np.float32))
np.save("f32_0x4.npy", np.zeros((0, 4), dtype=np.float32))
np.save("f32_2x3x4x5.npy", base(120).reshape(2, 3, 4, 5))
np.save("f32_1000x3.npy", base(3000).reshape(1000, 3))
np.save("f32_special.npy", np.array([0.0, -0.0, np.inf, -np.inf, np.nan,
                                     1e-45, 3.4028235e38, -1.5], dtype=np.float32))
np.save("f64_2x3.npy", base(6).reshape(2, 3).astype(np.float64))
np.save("i64_2x3.npy", np.arange(6, dtype=np.int64).reshape(2, 3))
np.save("f32_fortran.npy", np.asfortranarray(base(6).reshape(2, 3)))
np.save("f32_bigendian.npy", base(6).reshape(2, 3).astype(">f4"))
with open("f32_2x3_v2.npy", "wb") as f:
    npf.write_array(f, base(6).reshape(2, 3), version=(2, 0))
with open("f32_2x3_v3.npy", "wb") as f:
    npf.write_array(f, base(6).reshape(2, 3), version=(3, 0))
