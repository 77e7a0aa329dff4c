//! CRC-32C of a concatenation from its parts' CRCs, in a few hundred operations
//! whatever the lengths: `crc32c::crc32c_combine` squares 32x32 bit matrices
//! once per bit of the length (microseconds a call), too slow to join each of
//! a db's entries. Here the shift by `n` zero bytes is a product, modulo the
//! polynomial, with `x^(8n)` built from a table of `x^(2^k)` (the method of
//! zlib 1.2.12's `crc32_combine`, written anew).

/// CRC-32C's polynomial, bit-reflected.
const POLY: u32 = 0x82F6_3B78;

/// `a * b` modulo the polynomial (reflected: bit 31 is `x^0`).
fn mul(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0;
    loop {
        if a & m != 0 {
            p ^= b;
            if a & (m - 1) == 0 {
                return p;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
}

/// `x^(2^k)` modulo the polynomial, for k in 0..67 (bit 63 of a byte count is
/// bit 66 of a bit count).
static POWERS: std::sync::LazyLock<[u32; 67]> = std::sync::LazyLock::new(|| {
    let mut t = [0u32; 67];
    t[0] = 1 << 30; // x^1
    for k in 1..67 {
        t[k] = mul(t[k - 1], t[k - 1]);
    }
    t
});

/// `x^(8 * bytes)` modulo the polynomial.
fn shift(mut bytes: u64) -> u32 {
    let mut p = 1u32 << 31; // x^0
    let mut k = 3; // a byte is 2^3 bits
    while bytes != 0 {
        if bytes & 1 != 0 {
            p = mul(POWERS[k], p);
        }
        bytes >>= 1;
        k += 1;
    }
    p
}

thread_local! {
    /// Recent lengths' shifts (a db's entries often share a length); each
    /// slot starts as length 0's, which is true.
    static SHIFTS: std::cell::RefCell<[(u64, u32); 256]> =
        const { std::cell::RefCell::new([(0, 1 << 31); 256]) };
}

/// The CRC-32C of `a ‖ b` from `crc(a)`, `crc(b)` and `b`'s length.
pub fn combine(crc_a: u32, crc_b: u32, len_b: u64) -> u32 {
    let x = SHIFTS.with(|c| {
        let slot = &mut c.borrow_mut()[(len_b % 256) as usize];
        if slot.0 != len_b {
            *slot = (len_b, shift(len_b));
        }
        slot.1
    });
    mul(x, crc_a) ^ crc_b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_is_the_crc_of_the_concatenation() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for cut in [0usize, 1, 3, 8, 255, 256, 1000, 4095, 4999, 5000] {
            let (a, b) = data.split_at(cut);
            let want = crc32c::crc32c(&data);
            let got = combine(crc32c::crc32c(a), crc32c::crc32c(b), b.len() as u64);
            assert_eq!(got, want, "cut {cut}");
            assert_eq!(
                got,
                crc32c::crc32c_combine(crc32c::crc32c(a), crc32c::crc32c(b), b.len()),
                "cut {cut}"
            );
        }
        // Long lengths: as the crate's own combine says.
        for len in [1u64 << 20, (1 << 32) + 5, u64::from(u32::MAX) * 3, u64::MAX] {
            assert_eq!(
                combine(0x1234_5678, 0x9abc_def0, len),
                crc32c::crc32c_combine(0x1234_5678, 0x9abc_def0, len as usize),
                "{len}"
            );
        }
    }
}
