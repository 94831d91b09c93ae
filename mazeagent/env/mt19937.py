"""std::mt19937 in JAX (and a numpy twin for host-side seed streams), exactly as procgen's ``RandGen`` uses it.

Everything stays in uint32: ``uint32 % int32`` silently promotes (to int32 without x64, wrong for x >= 2**31), so
every modulus here is cast to uint32 first (:func:`randn`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

N = 624  # state words; one twist yields N outputs
_M = 397
_UPPER, _LOWER, _MATRIX = 0x80000000, 0x7FFFFFFF, 0x9908B0DF


def seed_state(seed: jax.Array) -> jax.Array:
    """The 624 state words of ``std::mt19937(seed)`` (``init_genrand``). ``seed`` is cast to uint32."""
    first = jnp.asarray(seed).astype(jnp.uint32)

    def body(prev, i):
        nxt = jnp.uint32(1812433253) * (prev ^ (prev >> jnp.uint32(30))) + i
        return nxt, nxt

    _, rest = jax.lax.scan(body, first, jnp.arange(1, N, dtype=jnp.uint32), unroll=1)
    return jnp.concatenate([first[None], rest])


def _twist_part(cur, nxt, far):
    y = (cur & jnp.uint32(_UPPER)) | (nxt & jnp.uint32(_LOWER))
    return far ^ (y >> jnp.uint32(1)) ^ jnp.where(y & jnp.uint32(1), jnp.uint32(_MATRIX), jnp.uint32(0))


def twist(mt: jax.Array) -> jax.Array:
    """One full regeneration of the 624 words, vectorised in 3 slices (later slices read freshly twisted words)."""
    a = _twist_part(mt[0:227], mt[1:228], mt[397:624])
    b = _twist_part(mt[227:454], mt[228:455], a[0:227])
    c = _twist_part(mt[454:623], mt[455:624], b[0:169])
    d = _twist_part(mt[623:624], a[0:1], b[169:170])
    return jnp.concatenate([a, b, c, d])


def temper(y: jax.Array) -> jax.Array:
    y = y ^ (y >> jnp.uint32(11))
    y = y ^ ((y << jnp.uint32(7)) & jnp.uint32(0x9D2C5680))
    y = y ^ ((y << jnp.uint32(15)) & jnp.uint32(0xEFC60000))
    return y ^ (y >> jnp.uint32(18))


def randn(x: jax.Array, n) -> jax.Array:
    """procgen ``RandGen::randn``: ``x % uint32(n)`` as int32 (n > 0)."""
    return (x % jnp.asarray(n).astype(jnp.uint32)).astype(jnp.int32)


@struct.dataclass
class MTStream:
    """A running generator: the current state words and the read position (``idx == 624`` means the block is used
    up, like libstdc++'s index right after seeding). Outputs are ``temper(mt[idx])``, so no output block is stored."""

    mt: jax.Array  # (624,) uint32 state words
    idx: jax.Array  # int32 position of the next output


def stream(seed: jax.Array) -> MTStream:
    """A generator seeded like ``std::mt19937(seed)``; its first draw twists."""
    return MTStream(mt=seed_state(seed), idx=jnp.int32(N))


def draw(s: MTStream) -> tuple[jax.Array, MTStream]:
    """Next 32-bit output. The twist is a select (branch-free under vmap, where a cond would run both sides anyway)."""
    need = s.idx >= N
    mt = jnp.where(need, twist(s.mt), s.mt)
    idx = jnp.where(need, 0, s.idx)
    return temper(mt[idx]), MTStream(mt=mt, idx=idx + 1)


def first_outputs(seed: jax.Array) -> jax.Array:
    """The first 624 outputs of ``std::mt19937(seed)`` (enough for any stock maze level: at most ~320 draws)."""
    return temper(twist(seed_state(seed)))


# ---- numpy twin (host-side seed streams; numpy's legacy seeding is std::mt19937's init_genrand) ----

def np_outputs(seed: int, count: int) -> np.ndarray:
    """The first ``count`` outputs of ``std::mt19937(seed)`` as uint32, on the host."""
    bitgen = np.random.MT19937()
    bitgen._legacy_seeding(int(seed) & 0xFFFFFFFF)
    return bitgen.random_raw(count).astype(np.uint32)
