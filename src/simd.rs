//! Byte-class searches with SIMD: the only module allowed `unsafe` (issue #16), for
//! `std::arch` loads on the scanner's hottest path. It decides nothing about JSON; it answers
//! "where is the next byte of this class" exactly as the plain loops beside it do, and tests and
//! the fuzz targets hold it to them.
//!
//! x86_64 uses SSE2, which every x86_64 CPU has (it is part of the architecture's baseline, so
//! no run-time detection is needed and the code inlines into the scanner); other targets use
//! the scalar loop. AVX2 (32 bytes per step) was left out: it needs run-time detection, and a
//! call through a `#[target_feature]` function per string costs more than it saves on
//! capture's short strings (most are under 16 bytes).
#![allow(unsafe_code)]

/// Whether `b` ends a run of plain string bytes: `"`, `\` or a control byte (below 0x20).
#[inline(always)]
pub fn is_string_stop(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The index of the first byte at or after `i` that [`is_string_stop`], or `s.len()` when
/// there is none (also when `i >= s.len()`).
#[inline(always)]
pub fn string_stop(s: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8,
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
                // Unsigned `x <= 0x1f` as `max(x, 0x1f) == 0x1f` (SSE2 has no unsigned compare).
                let low = _mm_set1_epi8(0x1f);
                let control = _mm_cmpeq_epi8(_mm_max_epu8(x, low), low);
                _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
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
        fn simd_and_scalar_agree_on_string_like_bytes(
            s in "[a-z0-9 ./:\u{e9}\"\\\\\u{1}\u{1f}\u{7f}]{0,80}",
            from in 0usize..90,
        ) {
            let s = s.as_bytes();
            prop_assert_eq!(string_stop(s, from), string_stop_scalar(s, from));
        }
    }
}
