//! A fixed-base table of one point P: for each W-bit window i of a scalar,
//! the multiples j·2^(W·i)·P for j = 1..2^(W−1), affine (one batch
//! inversion). With signed window digits a scalar multiple k·P is then one
//! mixed addition per non-zero digit and no doubling: ⌈257/W⌉ additions.
//! Variable time (public data only).

use super::point::{batch_to_affine, Affine, Jacobian};
use super::scalar::Scalar;

/// The window width, chosen by measurement (`cargo bench --bench
/// signatures`, docs/performance.md).
pub const WINDOW: usize = 7;
/// Multiples kept per window: the digits' magnitudes 1..=2^(W−1).
const PER_WINDOW: usize = 1 << (WINDOW - 1);
/// Windows over 256 bits, with room for the last digit's carry.
const WINDOWS: usize = 256 / WINDOW + 1;

pub struct Table {
    /// Row i holds j·2^(W·i)·P at j − 1.
    multiples: Vec<Affine>,
}

impl Table {
    /// The bytes a table holds (its points; the `Vec` header aside).
    pub const BYTES: usize = WINDOWS * PER_WINDOW * std::mem::size_of::<Affine>();

    /// `None` only if some multiple is infinity, which no point of the
    /// curve's prime order n gives (j·2^(W·i) < 2²⁶⁴ is never a multiple of n).
    pub fn new(point: &Affine) -> Option<Table> {
        let mut multiples = Vec::with_capacity(WINDOWS * PER_WINDOW);
        let mut base = Jacobian::from_affine(point);
        for _ in 0..WINDOWS {
            let mut multiple = base;
            multiples.push(multiple);
            for _ in 1..PER_WINDOW {
                multiple = multiple.add(&base);
                multiples.push(multiple);
            }
            // 2^(W−1)·base doubled: the next window's base.
            base = multiple.double();
        }
        Some(Table {
            multiples: batch_to_affine(&multiples)?,
        })
    }

    /// accumulator + k·P; `None` if the table is not whole (cannot happen).
    pub fn add_multiple(&self, accumulator: Jacobian, k: &Scalar) -> Option<Jacobian> {
        let mut accumulator = accumulator;
        for (row, digit) in self
            .multiples
            .chunks_exact(PER_WINDOW)
            .zip(signed_digits(k))
        {
            if digit == 0 {
                continue;
            }
            let multiple = row.get(digit.unsigned_abs() as usize - 1)?;
            accumulator = if digit > 0 {
                accumulator.add_affine(multiple)
            } else {
                accumulator.add_affine(&multiple.neg())
            };
        }
        Some(accumulator)
    }
}

/// k = Σ dᵢ·2^(W·i) with dᵢ ∈ [−2^(W−1), 2^(W−1)] (a window above 2^(W−1)
/// becomes negative and carries 1 into the next).
fn signed_digits(k: &Scalar) -> [i32; WINDOWS] {
    let mut digits = [0i32; WINDOWS];
    let mut carry = 0i32;
    for (i, digit) in digits.iter_mut().enumerate() {
        let value = window(k, i * WINDOW) + carry;
        if value > PER_WINDOW as i32 {
            *digit = value - (1 << WINDOW);
            carry = 1;
        } else {
            *digit = value;
            carry = 0;
        }
    }
    digits
}

/// The W bits of k from bit `position` (zeros past bit 255).
fn window(k: &Scalar, position: usize) -> i32 {
    let limbs = k.limbs();
    let limb = position / 64;
    let offset = position % 64;
    let low = limbs.get(limb).copied().unwrap_or(0) >> offset;
    let high = match offset {
        0 => 0,
        _ => limbs.get(limb + 1).copied().unwrap_or(0) << (64 - offset),
    };
    ((low | high) & ((1 << WINDOW) - 1)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_sum_back_to_the_scalar() {
        for k in [
            [0, 0, 0, 0],
            [1, 0, 0, 0],
            [u64::MAX, u64::MAX, u64::MAX, u64::MAX - 1],
            [
                0x8080_8080_8080_8080,
                0x7f7f_7f7f_7f7f_7f7f,
                0x4040_4040,
                1 << 63,
            ],
        ] {
            let digits = signed_digits(&Scalar(k));
            // Σ dᵢ·2^(W·i) in i128 pieces: compare against k limb by limb
            // by reassembling with carries in 320-bit space.
            let mut total = [0i128; 6];
            for (i, d) in digits.iter().enumerate() {
                let bit = i * WINDOW;
                let (limb, offset) = (bit / 64, bit % 64);
                total[limb] += i128::from(*d) << offset;
            }
            let mut limbs = [0u64; 6];
            let mut carry = 0i128;
            for (out, t) in limbs.iter_mut().zip(total) {
                let v = t + carry;
                *out = v as u64;
                carry = v >> 64;
            }
            assert_eq!(&limbs[..4], &k[..], "{k:x?}");
            assert_eq!(&limbs[4..], &[0, 0]);
            assert!(digits.iter().all(|d| d.abs() <= PER_WINDOW as i32));
        }
    }
}
