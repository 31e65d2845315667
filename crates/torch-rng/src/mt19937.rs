//! The MT19937 engine exactly as `at::mt19937` seeds and runs it.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// 32-bit Mersenne Twister (Matsumoto & Nishimura, `init_genrand` seeding).
#[derive(Clone)]
pub(crate) struct Mt19937 {
    state: [u32; N],
    /// Next word of `state` to temper; `N` means "regenerate first".
    next: usize,
}

impl Mt19937 {
    /// Seeds like torch: only the low 32 bits of the 64-bit seed enter the state
    /// (`mt19937_engine::init_with_uint32`), so seeds `s` and `s + 2^32` give the same stream.
    pub(crate) fn new(seed: u64) -> Self {
        let mut state = [0u32; N];
        state[0] = seed as u32;
        for j in 1..N {
            let prev = state[j - 1];
            state[j] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(j as u32);
        }
        Self { state, next: N }
    }

    /// The next tempered 32-bit word.
    #[inline]
    pub(crate) fn next_u32(&mut self) -> u32 {
        if self.next >= N {
            self.twist();
        }
        let y = self.state[self.next];
        self.next += 1;
        temper(y)
    }

    /// `out[i] = f(next_u32())` for every element in order, a state-sized run at a time so the
    /// tempering loop has no per-word branch and vectorises.
    #[inline]
    pub(crate) fn fill<T>(&mut self, out: &mut [T], f: impl Fn(u32) -> T) {
        let mut out = out;
        while !out.is_empty() {
            if self.next >= N {
                self.twist();
            }
            let take = (N - self.next).min(out.len());
            let (head, rest) = std::mem::take(&mut out).split_at_mut(take);
            for (o, &w) in head
                .iter_mut()
                .zip(&self.state[self.next..self.next + take])
            {
                *o = f(temper(w));
            }
            self.next += take;
            out = rest;
        }
    }

    fn twist(&mut self) {
        #[inline(always)]
        fn mix(upper: u32, lower: u32, far: u32) -> u32 {
            let y = (upper & UPPER_MASK) | (lower & LOWER_MASK);
            far ^ (y >> 1) ^ if y & 1 == 1 { MATRIX_A } else { 0 }
        }
        // The classic three loops (no index wrap-around inside the hot ones). Words are updated in
        // place, so the last ones read already-updated words, as in the reference.
        let s = &mut self.state;
        for i in 0..N - M {
            s[i] = mix(s[i], s[i + 1], s[i + M]);
        }
        for i in N - M..N - 1 {
            s[i] = mix(s[i], s[i + 1], s[i + M - N]);
        }
        s[N - 1] = mix(s[N - 1], s[0], s[M - 1]);
        self.next = 0;
    }
}

#[inline(always)]
fn temper(mut y: u32) -> u32 {
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c_5680;
    y ^= (y << 15) & 0xefc6_0000;
    y ^ (y >> 18)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_implementation() {
        // mt19937ar.c with init_genrand(5489): the C++ standard's 10000th output is 4123659995.
        let mut mt = Mt19937::new(5489);
        assert_eq!(mt.next_u32(), 3_499_211_612);
        let last = (1..10_000).map(|_| mt.next_u32()).last();
        assert_eq!(last, Some(4_123_659_995));
        // The bulk path yields the same words across state refills.
        let (mut a, mut b) = (Mt19937::new(1), Mt19937::new(1));
        let mut bulk = vec![0u32; 2000];
        a.next_u32();
        b.next_u32();
        a.fill(&mut bulk, |w| w);
        assert!(bulk.iter().all(|&w| w == b.next_u32()));
    }
}
