//! Arithmetic modulo an odd number in Montgomery form, the one arithmetic
//! behind every pure-Rust signature check (`rsassa.rs`, `ecdsa.rs`).
//!
//! Numbers are little-endian limbs, as many as the modulus has: 32-bit in
//! wasm32 (its widest native product is 64 bits), 64-bit on 64-bit hosts
//! (the native module, the CLI, tests). The functions work on slices, so
//! one copy of the code serves a 256-bit curve and a 4096-bit RSA key;
//! the pure-Rust RSA, P-256 and P-384 crates instantiate theirs per size
//! (~200 KB of the shipped .wasm). Only public values (keys, signatures,
//! messages) pass here: the code is variable-time.

/// One limb and the product of two.
#[cfg(target_pointer_width = "64")]
pub type Limb = u64;
#[cfg(target_pointer_width = "64")]
type Wide = u128;
#[cfg(not(target_pointer_width = "64"))]
pub type Limb = u32;
#[cfg(not(target_pointer_width = "64"))]
type Wide = u64;

const LIMB_BITS: usize = Limb::BITS as usize;
const LIMB_BYTES: usize = LIMB_BITS / 8;

/// The most limbs a modulus may have (4096 bits, the largest RSA key).
pub const MAX_LIMBS: usize = 4096 / LIMB_BITS;

/// An odd modulus `n` > 1 of `L` limbs, with `R = 2^(LIMB_BITS·L)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modulus {
    n: Vec<Limb>,
    /// `-n⁻¹ mod 2^LIMB_BITS`.
    n0_inv: Limb,
    /// `R² mod n`: multiplying by it enters Montgomery form.
    r2: Vec<Limb>,
}

/// Little-endian limbs of big-endian bytes, `len` limbs (`None` when the
/// value does not fit).
pub fn limbs(bytes: &[u8], len: usize) -> Option<Vec<Limb>> {
    let mut out = vec![0; len];
    for (i, b) in bytes.iter().rev().enumerate() {
        if *b != 0 {
            *out.get_mut(i / LIMB_BYTES)? |= Limb::from(*b) << (8 * (i % LIMB_BYTES));
        }
    }
    Some(out)
}

/// The limbs needed for `bytes` big-endian bytes.
pub fn limbs_for(bytes: usize) -> usize {
    bytes.div_ceil(LIMB_BYTES)
}

/// Big-endian bytes of little-endian limbs, exactly `len` of them (the
/// value must fit).
pub fn be_bytes(limbs: &[Limb], len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
    if out.len() >= len {
        out.split_off(out.len() - len)
    } else {
        let mut padded = vec![0u8; len - out.len()];
        padded.append(&mut out);
        padded
    }
}

/// `a < b` (same length).
pub fn less(a: &[Limb], b: &[Limb]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b` (same length); the borrow out.
fn sub_in_place(a: &mut [Limb], b: &[Limb]) -> bool {
    let mut borrow = false;
    for (x, y) in a.iter_mut().zip(b) {
        let (d, b1) = x.overflowing_sub(*y);
        let (d, b2) = d.overflowing_sub(Limb::from(borrow));
        *x = d;
        borrow = b1 || b2;
    }
    borrow
}

/// `a += b` (same length); the carry out.
fn add_in_place(a: &mut [Limb], b: &[Limb]) -> bool {
    let mut carry = false;
    for (x, y) in a.iter_mut().zip(b) {
        let (s, c1) = x.overflowing_add(*y);
        let (s, c2) = s.overflowing_add(Limb::from(carry));
        *x = s;
        carry = c1 || c2;
    }
    carry
}

fn copy(out: &mut [Limb], a: &[Limb]) {
    for (o, x) in out.iter_mut().zip(a) {
        *o = *x;
    }
}

/// Whether bit `i` of `a` is set.
pub fn bit(a: &[Limb], i: usize) -> bool {
    a.get(i / LIMB_BITS)
        .is_some_and(|l| l >> (i % LIMB_BITS) & 1 == 1)
}

impl Modulus {
    /// The modulus of these big-endian bytes; `None` unless odd, above 1
    /// and at most 4096 bits.
    pub fn new(bytes: &[u8]) -> Option<Modulus> {
        let significant = bytes.iter().skip_while(|b| **b == 0).count();
        let len = limbs_for(significant);
        if len == 0 || len > MAX_LIMBS {
            return None;
        }
        let n = limbs(bytes, len)?;
        let n0 = *n.first()?;
        if n0 & 1 == 0 || (len == 1 && n0 == 1) {
            return None;
        }
        // Newton's iteration doubles the correct low bits: 3 → 96.
        let mut inv = n0;
        for _ in 0..5 {
            inv = inv.wrapping_mul((2 as Limb).wrapping_sub(n0.wrapping_mul(inv)));
        }
        let mut m = Modulus {
            n,
            n0_inv: inv.wrapping_neg(),
            r2: Vec::new(),
        };
        // 1 doubled 2·LIMB_BITS·L times: R² mod n.
        let mut r2 = m.small(1);
        for _ in 0..2 * LIMB_BITS * len {
            r2 = m.add(&r2, &r2);
        }
        m.r2 = r2;
        Some(m)
    }

    /// Limbs of every number modulo this one.
    pub fn len(&self) -> usize {
        self.n.len()
    }

    pub fn limbs(&self) -> &[Limb] {
        &self.n
    }

    /// The small number `v` in `L` limbs (not in Montgomery form).
    fn small(&self, v: Limb) -> Vec<Limb> {
        let mut out = vec![0; self.n.len()];
        if let Some(low) = out.first_mut() {
            *low = v;
        }
        out
    }

    /// `a·b·R⁻¹ mod n` (CIOS) into `out`, for `a`, `b` below `R` whose
    /// product is below `n·R` (any reduced value times anything of `L`
    /// limbs). All slices have `L` limbs; `out` holds the running sum, its
    /// two words above in `top`.
    pub fn mul_into(&self, out: &mut [Limb], a: &[Limb], b: &[Limb]) {
        let Some((&n0, n_rest)) = self.n.split_first() else {
            return;
        };
        out.iter_mut().for_each(|o| *o = 0);
        let mut top: Limb = 0;
        for &bi in b {
            // t += a·bi
            let mut carry: Wide = 0;
            for (tj, aj) in out.iter_mut().zip(a) {
                let s = Wide::from(*tj) + Wide::from(*aj) * Wide::from(bi) + carry;
                *tj = s as Limb;
                carry = s >> LIMB_BITS;
            }
            let s = Wide::from(top) + carry;
            let (t_len, t_top) = (s as Limb, (s >> LIMB_BITS) as Limb);
            // t = (t + m·n) / 2^LIMB_BITS, m making the low limb zero.
            let Some((t0, rest)) = out.split_first_mut() else {
                return;
            };
            let m = Wide::from(t0.wrapping_mul(self.n0_inv));
            let mut carry = (Wide::from(*t0) + m * Wide::from(n0)) >> LIMB_BITS;
            let mut below = t0;
            for (tj, nj) in rest.iter_mut().zip(n_rest) {
                let s = Wide::from(*tj) + m * Wide::from(*nj) + carry;
                *below = s as Limb;
                carry = s >> LIMB_BITS;
                below = tj;
            }
            let s = Wide::from(t_len) + carry;
            *below = s as Limb;
            top = t_top + (s >> LIMB_BITS) as Limb;
        }
        if top != 0 || !less(out, &self.n) {
            sub_in_place(out, &self.n);
        }
    }

    pub fn mul(&self, a: &[Limb], b: &[Limb]) -> Vec<Limb> {
        let mut out = vec![0; self.n.len()];
        self.mul_into(&mut out, a, b);
        out
    }

    /// `a` (any value of `L` limbs) in Montgomery form, reduced.
    pub fn to_montgomery(&self, a: &[Limb]) -> Vec<Limb> {
        self.mul(a, &self.r2)
    }

    /// The reduced value of `a` in Montgomery form.
    pub fn to_plain(&self, a: &[Limb]) -> Vec<Limb> {
        self.mul(a, &self.small(1))
    }

    /// `a + b mod n` into `out` (reduced inputs).
    pub fn add_into(&self, out: &mut [Limb], a: &[Limb], b: &[Limb]) {
        copy(out, a);
        let carry = add_in_place(out, b);
        if carry || !less(out, &self.n) {
            sub_in_place(out, &self.n);
        }
    }

    pub fn add(&self, a: &[Limb], b: &[Limb]) -> Vec<Limb> {
        let mut out = vec![0; self.n.len()];
        self.add_into(&mut out, a, b);
        out
    }

    /// `a - b mod n` into `out` (reduced inputs).
    pub fn sub_into(&self, out: &mut [Limb], a: &[Limb], b: &[Limb]) {
        copy(out, a);
        if sub_in_place(out, b) {
            add_in_place(out, &self.n);
        }
    }

    /// `a - n` if `a ≥ n` (for values below `2n`).
    pub fn reduce_once(&self, a: &mut [Limb]) {
        if !less(a, &self.n) {
            sub_in_place(a, &self.n);
        }
    }

    /// `base^exponent` (Montgomery form in and out); `exponent` is
    /// little-endian limbs.
    pub fn pow(&self, base: &[Limb], exponent: &[Limb]) -> Vec<Limb> {
        let mut acc = self.to_montgomery(&self.small(1));
        let mut scratch = acc.clone();
        let top = (0..LIMB_BITS * exponent.len())
            .rev()
            .find(|i| bit(exponent, *i));
        for i in (0..top.map_or(0, |t| t + 1)).rev() {
            self.mul_into(&mut scratch, &acc, &acc);
            std::mem::swap(&mut acc, &mut scratch);
            if bit(exponent, i) {
                self.mul_into(&mut scratch, &acc, base);
                std::mem::swap(&mut acc, &mut scratch);
            }
        }
        acc
    }

    /// `a⁻¹` (Montgomery form in and out) for a prime modulus, by Fermat
    /// (`a^(n-2)`); zero stays zero.
    pub fn invert_prime(&self, a: &[Limb]) -> Vec<Limb> {
        let mut exponent = self.n.clone();
        sub_in_place(&mut exponent, &self.small(2));
        self.pow(a, &exponent)
    }
}

#[cfg(test)]
mod tests;
