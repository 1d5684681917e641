"""How a red packet's total is cut into shares, and its claim code. Standard library only.

- ``equal``: ``total // shares`` each, the first ``total % shares`` shares one point more.
- ``random``: the "double average" method. With ``remaining`` points and ``left`` shares to
  go, a share is uniform in ``[1, min(2 x remaining ÷ left, remaining - (left - 1))]``
  (integer division); the last share takes what remains. Every share is ≥ 1, the shares sum
  exactly to the total, and each share's expectation is the average of what remains, so the
  order of claiming gives no advantage on average.

The draw is decided at claim time and is a pure function of the packet's recorded seed, the
share's number and what remains, so replaying the claims gives the same shares.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final, Literal, TypeAlias

__all__ = [
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "SplitMode",
    "draw_share",
    "new_claim_code",
    "new_seed",
    "normalise_claim_code",
]

SplitMode: TypeAlias = Literal["equal", "random"]

CODE_ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
"""The referral codes' alphabet: no 0/O, 1/I/L, U. 30 symbols."""
CODE_LENGTH: Final = 10
"""30^10 ≈ 5.9 x 10^14 codes: unguessable at any rate the API lets through, short to type."""


def new_claim_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_claim_code(code: str) -> str:
    return code.strip().upper().replace("-", "").replace(" ", "")


def new_seed() -> str:
    return secrets.token_hex(16)


def _uniform(seed: str, share_no: int, low: int, high: int) -> int:
    """A uniform integer in ``[low, high]`` from the seed and share number (256 bits of
    SHA-256 reduced modulo the span: the bias is below 2^-200)."""
    digest = hashlib.sha256(f"{seed}:{share_no}".encode()).digest()
    return low + int.from_bytes(digest, "big") % (high - low + 1)


def draw_share(mode: SplitMode, *, total: int, shares: int, share_no: int,
               remaining: int, seed: str) -> int:
    """The points of share ``share_no`` (1-based) when ``remaining`` points are left for the
    shares ``share_no..shares``."""
    left = shares - share_no + 1
    if not 1 <= share_no <= shares or remaining < left or total < shares:
        raise ValueError(f"share {share_no} of {shares}: {remaining} points left")
    if left == 1:
        return remaining
    if mode == "equal":
        base, extra = divmod(total, shares)
        return base + (1 if share_no <= extra else 0)
    high = min(2 * remaining // left, remaining - (left - 1))
    return _uniform(seed, share_no, 1, max(high, 1))
