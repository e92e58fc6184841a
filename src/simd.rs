//! Byte-class searches with SIMD: the only module allowed `unsafe` (issue #16), for
//! `std::arch` loads on the scanner's hottest path. It decides nothing about JSON; it answers
//! "where is the next byte of this class" and "which bytes of this window are of these classes"
//! exactly as the plain loops beside it do, and tests and the fuzz targets hold it to them.
//!
//! x86_64 uses SSE2, which every x86_64 CPU has (it is part of the architecture's baseline, so
//! no run-time detection is needed and the code inlines into the scanner); other targets use
//! the scalar loop. AVX2 (32 bytes per step) was left out: it needs run-time detection, and a
//! call through a `#[target_feature]` function per string costs more than it saves on
//! capture's short strings (most are under 16 bytes).
#![allow(unsafe_code)]

/// Whether `b` ends a run of plain string bytes: `"`, `\\`, a control byte (below 0x20) or a
/// non-ASCII byte (0x80 and up: the scanner checks UTF-8 only where it appears).
#[inline(always)]
pub fn is_string_stop(b: u8) -> bool {
    b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b)
}

/// The index of the first byte at or after `i` that [`is_string_stop`], or `s.len()` when
/// there is none (also when `i >= s.len()`).
#[inline(always)]
pub fn string_stop(s: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
            _mm_or_si128, _mm_set1_epi8,
        };
        while i + 16 <= s.len() {
            // SAFETY: `i + 16 <= s.len()`, so the 16 bytes read from `s.as_ptr() + i` lie
            // inside `s`; `_mm_loadu_si128` has no alignment requirement. The other intrinsics
            // only compute on registers, and SSE2 is always present on x86_64 (baseline
            // feature, enabled for every x86_64 target), so none of them can fault.
            let mask = unsafe {
                let x = _mm_loadu_si128(s.as_ptr().add(i).cast::<__m128i>());
                let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
                let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
                // Signed `x < 0x20`: the control bytes and, as negative numbers, 0x80..=0xff.
                let outside = _mm_cmplt_epi8(x, _mm_set1_epi8(0x20));
                _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), outside)) as u32
            };
            if mask != 0 {
                return i + mask.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    string_stop_scalar(s, i)
}

/// [`string_stop`] one byte at a time: the reference the SIMD path is tested against, and the
/// tail of every search.
#[inline(always)]
pub fn string_stop_scalar(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && !is_string_stop(s[i]) {
        i += 1;
    }
    i.min(s.len())
}

/// The ASCII digits (`0`–`9`) among the 16 bytes at `i` (bit `k` stands for byte `i + k`;
/// bits 16 and up are clear), or `None` when fewer than 16 bytes remain. The scanner reads a
/// whole number of up to 15 digits, its sign and the byte after it with one such window.
#[inline(always)]
pub fn digits16(s: &[u8], i: usize) -> Option<u32> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128};
        if i.checked_add(16)? > s.len() {
            return None;
        }
        // SAFETY: `i + 16 <= s.len()` (checked just above without overflow), so the 16 bytes
        // read from `s.as_ptr() + i` lie inside `s`; `_mm_loadu_si128` has no alignment
        // requirement, and SSE2 is always present on x86_64 (baseline feature).
        let x = unsafe { _mm_loadu_si128(s.as_ptr().add(i).cast::<__m128i>()) };
        #[allow(clippy::needless_return)]
        return Some(digit_mask(x));
    }
    #[cfg(not(target_arch = "x86_64"))]
    return digits16_scalar(s, i);
}

/// The ASCII digits among the 16 bytes of `x` (bit `k` for byte `k`): the one digit test of
/// [`digits16`] and [`int_masks`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn digit_mask(x: std::arch::x86_64::__m128i) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_max_epu8, _mm_movemask_epi8, _mm_set1_epi8, _mm_sub_epi8,
    };
    // SAFETY: these intrinsics read no memory, only registers, and SSE2 is always present on
    // x86_64 (baseline feature), so none of them can fault.
    unsafe {
        // `x - '0'` as an unsigned byte is at most 9 exactly for digits: `max(y, 9) == 9` is
        // SSE2's unsigned `y <= 9`.
        let y = _mm_sub_epi8(x, _mm_set1_epi8(b'0' as i8));
        let nine = _mm_set1_epi8(9);
        _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(y, nine), nine)) as u32 & 0xffff
    }
}

/// [`digits16`] one byte at a time: the reference the SIMD path is tested against.
pub fn digits16_scalar(s: &[u8], i: usize) -> Option<u32> {
    let w = s.get(i..i.checked_add(16)?)?;
    Some(
        w.iter()
            .enumerate()
            .fold(0, |m, (k, b)| m | u32::from(b.is_ascii_digit()) << k),
    )
}

/// Byte classes of a 32-byte window for the scanner's run of integers in an array (bit `k`
/// stands for byte `i + k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntMasks {
    /// `0`–`9`.
    pub digit: u32,
    /// `,`.
    pub comma: u32,
    /// `0`.
    pub zero: u32,
}

/// The [`IntMasks`] of the 32 bytes at `i`, or `None` when fewer than 32 bytes remain.
#[inline(always)]
pub fn int_masks(s: &[u8], i: usize) -> Option<IntMasks> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        if i.checked_add(32)? > s.len() {
            return None;
        }
        // SAFETY: `i + 32 <= s.len()` (checked just above without overflow), so both 16-byte
        // reads, at `s.as_ptr() + i` and `+ i + 16`, lie inside `s`; `_mm_loadu_si128` has no
        // alignment requirement. The other intrinsics only compute on registers, and SSE2 is
        // always present on x86_64 (baseline feature), so none of them can fault.
        let half = |at: usize| unsafe {
            let x = _mm_loadu_si128(s.as_ptr().add(at).cast::<__m128i>());
            let comma = _mm_cmpeq_epi8(x, _mm_set1_epi8(b',' as i8));
            let zero = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'0' as i8));
            [
                digit_mask(x),
                _mm_movemask_epi8(comma) as u32 & 0xffff,
                _mm_movemask_epi8(zero) as u32 & 0xffff,
            ]
        };
        let (lo, hi) = (half(i), half(i + 16));
        #[allow(clippy::needless_return)]
        return Some(IntMasks {
            digit: lo[0] | hi[0] << 16,
            comma: lo[1] | hi[1] << 16,
            zero: lo[2] | hi[2] << 16,
        });
    }
    #[cfg(not(target_arch = "x86_64"))]
    return int_masks_scalar(s, i);
}

/// [`int_masks`] one byte at a time: the reference the SIMD path is tested against.
pub fn int_masks_scalar(s: &[u8], i: usize) -> Option<IntMasks> {
    let w = s.get(i..i.checked_add(32)?)?;
    let mut m = IntMasks {
        digit: 0,
        comma: 0,
        zero: 0,
    };
    for (k, &b) in w.iter().enumerate() {
        m.digit |= u32::from(b.is_ascii_digit()) << k;
        m.comma |= u32::from(b == b',') << k;
        m.zero |= u32::from(b == b'0') << k;
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_byte_value_at_every_lane_is_classified_like_the_scalar_loop() {
        for b in 0..=255u8 {
            for at in 0..40 {
                let mut s = vec![b'a'; 40];
                s[at] = b;
                let want = if is_string_stop(b) { at } else { 40 };
                assert_eq!(string_stop(&s, 0), want, "byte {b:#x} at {at}");
                assert_eq!(string_stop(&s, 0), string_stop_scalar(&s, 0));
                for from in [at.saturating_sub(17), at, at + 1] {
                    assert_eq!(string_stop(&s, from), string_stop_scalar(&s, from));
                }
            }
        }
    }

    #[test]
    fn int_masks_classify_every_byte_value_at_every_lane_like_the_scalar_loop() {
        for b in 0..=255u8 {
            for at in 0..40 {
                let mut s = vec![b'7'; 40];
                s[at] = b;
                for from in 0..=8 {
                    let got = int_masks(&s, from);
                    assert_eq!(got, int_masks_scalar(&s, from), "byte {b:#x} at {at}");
                    let m = got.expect("32 bytes from 0..=8");
                    if (from..from + 32).contains(&at) {
                        let bit = 1u32 << (at - from);
                        assert_eq!(m.digit & bit != 0, b.is_ascii_digit(), "{b:#x}");
                        assert_eq!(m.comma & bit != 0, b == b',', "{b:#x}");
                        assert_eq!(m.zero & bit != 0, b == b'0', "{b:#x}");
                    }
                }
            }
        }
        assert_eq!(int_masks(&[b'1'; 31], 0), None);
        assert_eq!(int_masks(&[b'1'; 40], 9), None);
        assert_eq!(int_masks(&[b'1'; 40], usize::MAX), None);
        assert_eq!(int_masks_scalar(&[b'1'; 40], usize::MAX), None);
    }

    #[test]
    fn digits16_classifies_every_byte_value_at_every_lane_like_the_scalar_loop() {
        for b in 0..=255u8 {
            for at in 0..24 {
                let mut s = vec![b'7'; 24];
                s[at] = b;
                for from in 0..=8 {
                    let got = digits16(&s, from);
                    assert_eq!(got, digits16_scalar(&s, from), "byte {b:#x} at {at}");
                    let m = got.expect("16 bytes from 0..=8");
                    assert_eq!(m >> 16, 0);
                    if (from..from + 16).contains(&at) {
                        assert_eq!(m & 1 << (at - from) != 0, b.is_ascii_digit(), "{b:#x}");
                    }
                }
            }
        }
        assert_eq!(digits16(&[b'1'; 15], 0), None);
        assert_eq!(digits16(&[b'1'; 24], 9), None);
        assert_eq!(digits16(&[b'1'; 24], usize::MAX), None);
        assert_eq!(digits16_scalar(&[b'1'; 24], usize::MAX), None);
    }

    #[test]
    fn start_at_or_past_the_end_is_the_end() {
        assert_eq!(string_stop(b"", 0), 0);
        assert_eq!(string_stop(b"abc", 3), 3);
        assert_eq!(string_stop(b"abc", 9), 3);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn simd_and_scalar_searches_agree(s in prop::collection::vec(any::<u8>(), 0..100), from in 0usize..110) {
            prop_assert_eq!(string_stop(&s, from), string_stop_scalar(&s, from));
        }

        #[test]
        fn int_masks_agree_with_the_scalar_loop(s in prop::collection::vec(any::<u8>(), 0..100), from in 0usize..110) {
            prop_assert_eq!(int_masks(&s, from), int_masks_scalar(&s, from));
        }

        #[test]
        fn digits16_agrees_with_the_scalar_loop(s in prop::collection::vec(any::<u8>(), 0..60), from in 0usize..70) {
            prop_assert_eq!(digits16(&s, from), digits16_scalar(&s, from));
        }

        #[test]
        fn int_masks_agree_on_number_lists(s in "[0-9,\\]\\- .e/:]{0,80}", from in 0usize..90) {
            let s = s.as_bytes();
            prop_assert_eq!(int_masks(s, from), int_masks_scalar(s, from));
        }

        #[test]
        fn simd_and_scalar_agree_on_string_like_bytes(
            s in "[a-z0-9 ./:\u{e9}\"\\\\\u{1}\u{1f}\u{7f}]{0,80}",
            from in 0usize..90,
        ) {
            let s = s.as_bytes();
            prop_assert_eq!(string_stop(s, from), string_stop_scalar(s, from));
        }
    }
}
