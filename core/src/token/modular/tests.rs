//! Montgomery arithmetic checked against `num-bigint-dig` (through the `rsa`
//! crate) on random moduli and values up to 4096 bits.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use ::rsa::BigUint;
use proptest::prelude::*;

fn big(limbs: &[Limb]) -> BigUint {
    BigUint::from_bytes_be(&be_bytes(limbs, std::mem::size_of_val(limbs)))
}

fn of(value: &BigUint, len: usize) -> Vec<Limb> {
    limbs(&value.to_bytes_be(), len).unwrap()
}

/// An odd modulus above 1 from random bytes, and two values below it.
fn case(bytes: &[u8], a: &[u8], b: &[u8]) -> Option<(Modulus, BigUint, BigUint, BigUint)> {
    let mut n = bytes.to_vec();
    *n.last_mut()? |= 1;
    let m = Modulus::new(&n)?;
    let n = BigUint::from_bytes_be(&n);
    Some((
        m,
        n.clone(),
        BigUint::from_bytes_be(a) % &n,
        BigUint::from_bytes_be(b) % &n,
    ))
}

proptest! {
    #[test]
    fn products_sums_and_differences_agree(
        n in proptest::collection::vec(any::<u8>(), 1..64),
        a in proptest::collection::vec(any::<u8>(), 0..64),
        b in proptest::collection::vec(any::<u8>(), 0..64),
        e in any::<u64>(),
    ) {
        if let Some((m, n, a, b)) = case(&n, &a, &b) {
            let len = m.len();
            let (am, bm) = (m.to_montgomery(&of(&a, len)), m.to_montgomery(&of(&b, len)));
            prop_assert_eq!(big(&m.to_plain(&m.mul(&am, &bm))), (&a * &b) % &n);
            prop_assert_eq!(big(&m.to_plain(&m.add(&am, &bm))), (&a + &b) % &n);
            let mut d = vec![0; len];
            m.sub_into(&mut d, &am, &bm);
            prop_assert_eq!(big(&m.to_plain(&d)), (&a + &n - &b) % &n);
            let exponent = limbs(&e.to_be_bytes(), limbs_for(8)).unwrap();
            prop_assert_eq!(
                big(&m.to_plain(&m.pow(&am, &exponent))),
                a.modpow(&BigUint::from(e), &n)
            );
        }
    }
}

#[test]
fn large_moduli_and_inverses() {
    // A 4096-bit odd modulus (all limbs used) and values near it.
    let mut n_bytes: Vec<u8> = (0..512u32).map(|i| (i * 37 + 11) as u8 | 0x80).collect();
    n_bytes[511] |= 1;
    let m = Modulus::new(&n_bytes).unwrap();
    assert_eq!(m.len(), MAX_LIMBS);
    let n = BigUint::from_bytes_be(&n_bytes);
    let a = &n - BigUint::from(12345u32);
    let b = &n >> 7;
    let (am, bm) = (
        m.to_montgomery(&of(&a, MAX_LIMBS)),
        m.to_montgomery(&of(&b, MAX_LIMBS)),
    );
    assert_eq!(big(&m.to_plain(&m.mul(&am, &bm))), (&a * &b) % &n);
    let e = limbs(&[1, 0, 1], 1).unwrap();
    assert_eq!(
        big(&m.to_plain(&m.pow(&am, &e))),
        a.modpow(&BigUint::from(65537u32), &n)
    );
    // Inverses modulo a prime (the P-256 field).
    let p = BigUint::parse_bytes(
        b"ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
        16,
    )
    .unwrap();
    let m = Modulus::new(&p.to_bytes_be()).unwrap();
    for x in [1u32, 2, 3, 0xdead_beef] {
        let xm = m.to_montgomery(&of(&BigUint::from(x), limbs_for(32)));
        let inverse = m.invert_prime(&xm);
        assert_eq!(big(&m.to_plain(&m.mul(&xm, &inverse))), BigUint::from(1u32));
    }
    // Even moduli, 1 and nothing are refused; leading zeros are not limbs.
    assert!(Modulus::new(&[0x10, 0x00]).is_none());
    assert!(Modulus::new(&[0, 1]).is_none());
    assert!(Modulus::new(&[]).is_none());
    assert_eq!(Modulus::new(&[0, 0, 0, 0, 0, 3]).unwrap().len(), 1);
    assert!(Modulus::new(&[0xff; 513]).is_none());
}
