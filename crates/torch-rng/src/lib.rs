//! torch's CPU generator (MT19937 + normal_fill), bit for bit: the same seeded noise as diffusers.
