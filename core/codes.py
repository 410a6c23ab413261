"""Check digits of Chinese identification codes, vectorised with NumPy.

- 统一社会信用代码 (unified social credit code, GB 32100-2015): 18 characters, last one a check
  character over 31 symbols.
- 公民身份号码 (citizen ID number, GB 11643-1999): 17 digits and an ISO 7064 MOD 11-2 check
  character (0-9 or X).
Used to make the demo city's codes valid and, in imports, to reject invalid ones.
"""
from __future__ import annotations

import numpy as np

CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28])
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_ID_CHECK = np.array(list("10X98765432"))


def credit_code_check_char(body: str) -> str:
    """Check character for the first 17 characters of a unified social credit code."""
    values = np.array([CREDIT_CHARSET.index(c) for c in body])
    return CREDIT_CHARSET[(31 - int(values @ _CREDIT_WEIGHTS) % 31) % 31]


def is_valid_credit_code(code: str) -> bool:
    return (
        len(code) == 18
        and all(c in CREDIT_CHARSET for c in code)
        and credit_code_check_char(code[:17]) == code[17]
    )


def id_numbers(bodies: np.ndarray) -> np.ndarray:
    """Complete 17-digit ID bodies (int64: division · 10¹¹ + birth date · 10³ + sequence) with
    their check characters; returns an object array of 18-character strings."""
    digits = (bodies[:, None] // 10 ** np.arange(16, -1, -1, dtype=np.int64)) % 10
    checks = _ID_CHECK[(digits @ _ID_WEIGHTS) % 11]
    return bodies.astype(str).astype(object) + checks.astype(object)


def is_valid_id_number(number: str) -> bool:
    if len(number) != 18 or not number[:17].isdigit():
        return False
    body = np.array([int(c) for c in number[:17]])
    return _ID_CHECK[int(body @ _ID_WEIGHTS) % 11] == number[17].upper()
