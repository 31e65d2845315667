//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) and the
//! per-thread state curand builds on it (`curandStatePhilox4_32_10_t`).
//!
//! curand's state is a 128-bit counter `(x, y, z, w)`, a 64-bit key and the index of the next
//! word inside the current 4-word output. `curand_init(seed, subsequence, offset)` puts the seed
//! in the key, the subsequence in the high 64 bits of the counter (`z`, `w`), and then skips
//! `offset` 32-bit words: `offset / 4` whole outputs (low 64 bits, `x`, `y`) plus `offset % 4`
//! words inside the next one.

/// Multipliers of the two Philox S-boxes.
const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
/// Weyl-sequence key increments (golden ratio, sqrt(3) - 1).
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// The Philox4x32 bijection with `rounds` rounds, `rounds >= 1`.
///
/// Each round multiplies words 0 and 2 by the S-box constants; the high halves are mixed with
/// words 1 and 3 and the key, the low halves move to words 1 and 3. The key is bumped between
/// rounds (not after the last).
#[inline]
pub(crate) fn philox4x32(mut ctr: [u32; 4], key: [u32; 2], rounds: u32) -> [u32; 4] {
    let mut k = key;
    for round in 0..rounds {
        if round > 0 {
            k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        }
        let p0 = u64::from(M0) * u64::from(ctr[0]);
        let p1 = u64::from(M1) * u64::from(ctr[2]);
        ctr = [
            (p1 >> 32) as u32 ^ ctr[1] ^ k[0],
            p1 as u32,
            (p0 >> 32) as u32 ^ ctr[3] ^ k[1],
            p0 as u32,
        ];
    }
    ctr
}

/// Philox4x32-10, the generator behind `torch.Generator("cuda")` (curand's
/// `curand_Philox4x32_10`): 4 random words for a 128-bit counter and a 64-bit key.
///
/// ```
/// // Random123's known-answer vector for an all-zero counter and key.
/// let out = torch_rng::philox4x32_10([0; 4], [0; 2]);
/// assert_eq!(out, [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
/// ```
#[inline]
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    philox4x32(ctr, key, 10)
}

/// `curandStatePhilox4_32_10_t`, reduced to what decides its outputs.
#[derive(Debug, Clone)]
pub(crate) struct CurandPhilox {
    ctr: [u32; 4],
    key: [u32; 2],
    /// Index (0..4) of the next word to hand out from the output at `ctr`.
    word: u32,
}

impl CurandPhilox {
    /// `curand_init(seed, subsequence, offset, &state)`.
    pub(crate) fn new(seed: u64, subsequence: u64, offset: u64) -> Self {
        let mut s = Self {
            ctr: [0; 4],
            key: [seed as u32, (seed >> 32) as u32],
            word: 0,
        };
        // skipahead_sequence: the subsequence is added to the high 64 bits of the counter.
        s.add_hi(subsequence);
        // skipahead: whole outputs first, then the words left over; a word index that passes
        // 3 moves to the next output.
        let mut whole = offset / 4;
        s.word += (offset % 4) as u32;
        if s.word > 3 {
            whole += 1;
            s.word -= 4;
        }
        s.add_lo(whole);
        s
    }

    /// `curand4`: the next 4 words, which straddle two outputs when the word index is not 0.
    /// PyTorch always starts at a multiple of 4, so there it is one output per call.
    pub(crate) fn next4(&mut self) -> [u32; 4] {
        let cur = philox4x32_10(self.ctr, self.key);
        self.add_lo(1);
        if self.word == 0 {
            return cur;
        }
        let next = philox4x32_10(self.ctr, self.key);
        let w = self.word as usize;
        std::array::from_fn(|i| {
            if w + i < 4 {
                cur[w + i]
            } else {
                next[w + i - 4]
            }
        })
    }

    /// `Philox_State_Incr(state, n)`: adds `n` to the low 64 bits of the counter. A carry out of
    /// word `y` reaches `z` (and `w`) only under curand's exact condition, kept here as written.
    fn add_lo(&mut self, n: u64) {
        let (nlo, mut nhi) = (n as u32, (n >> 32) as u32);
        self.ctr[0] = self.ctr[0].wrapping_add(nlo);
        if self.ctr[0] < nlo {
            nhi = nhi.wrapping_add(1);
        }
        self.ctr[1] = self.ctr[1].wrapping_add(nhi);
        if nhi <= self.ctr[1] {
            return;
        }
        self.ctr[2] = self.ctr[2].wrapping_add(1);
        if self.ctr[2] != 0 {
            return;
        }
        self.ctr[3] = self.ctr[3].wrapping_add(1);
    }

    /// `Philox_State_Incr_hi(state, n)`: adds `n` to the high 64 bits of the counter.
    fn add_hi(&mut self, n: u64) {
        let (nlo, mut nhi) = (n as u32, (n >> 32) as u32);
        self.ctr[2] = self.ctr[2].wrapping_add(nlo);
        if self.ctr[2] < nlo {
            nhi = nhi.wrapping_add(1);
        }
        self.ctr[3] = self.ctr[3].wrapping_add(nhi);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123 1.14's `tests/kat_vectors` (DEShawResearch/random123 on GitHub), the
    /// `philox4x32 7` lines: counter (4 words), key (2 words), expected output (4 words). The
    /// 10-round lines are checked in `tests/cuda.rs`; these pin the round/key-bump structure.
    #[test]
    fn seven_rounds_match_random123_known_answers() {
        let cases: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
            (
                [0; 4],
                [0; 2],
                [0x5f6fb709, 0x0d893f64, 0x4f121f81, 0x4f730a48],
            ),
            (
                [u32::MAX; 4],
                [u32::MAX; 2],
                [0x5207ddc2, 0x45165e59, 0x4d8ee751, 0x8c52f662],
            ),
            (
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0],
                [0x4dfccaba, 0x190a87f0, 0xc47362ba, 0xb6b5242a],
            ),
        ];
        for (ctr, key, want) in cases {
            assert_eq!(
                philox4x32(ctr, key, 7),
                want,
                "ctr {ctr:08x?} key {key:08x?}"
            );
        }
    }

    #[test]
    fn curand_init_places_seed_subsequence_and_offset() {
        let seed = 0x0123_4567_89ab_cdef_u64;
        let key = [0x89ab_cdef, 0x0123_4567];
        let sub = 0x0000_0002_0000_0005_u64;
        // offset 4·(2^32 + 3): counter low 64 bits = 2^32 + 3.
        let mut s = CurandPhilox::new(seed, sub, 4 * ((1 << 32) + 3));
        assert_eq!(s.next4(), philox4x32_10([3, 1, 5, 2], key));
        assert_eq!(s.next4(), philox4x32_10([4, 1, 5, 2], key));
    }

    #[test]
    fn an_offset_inside_an_output_straddles_two_outputs() {
        let key = [7, 0];
        let a = philox4x32_10([0, 0, 9, 0], key);
        let b = philox4x32_10([1, 0, 9, 0], key);
        let c = philox4x32_10([2, 0, 9, 0], key);
        let mut s = CurandPhilox::new(7, 9, 3);
        assert_eq!(s.next4(), [a[3], b[0], b[1], b[2]]);
        assert_eq!(s.next4(), [b[3], c[0], c[1], c[2]]);
        // offset 6 = one whole output plus 2 words.
        let mut s = CurandPhilox::new(7, 9, 6);
        assert_eq!(s.next4(), [b[2], b[3], c[0], c[1]]);
    }

    #[test]
    fn counter_carries_like_curand() {
        // Low word overflow carries into y.
        let mut s = CurandPhilox::new(0, 0, 4 * u64::from(u32::MAX));
        s.next4();
        assert_eq!(s.ctr, [0, 1, 0, 0]);
        // 64-bit overflow of (x, y) carries into z.
        let mut s = CurandPhilox {
            ctr: [u32::MAX, u32::MAX, 0, 0],
            key: [0; 2],
            word: 0,
        };
        s.next4();
        assert_eq!(s.ctr, [0, 0, 1, 0]);
        // Subsequence low word overflow carries into w.
        let s = CurandPhilox::new(0, u64::from(u32::MAX) + 1, 0);
        assert_eq!(s.ctr, [0, 0, 0, 1]);
    }
}
