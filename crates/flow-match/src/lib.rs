//! FlowMatchEulerDiscreteScheduler as Qwen-Image configures it: shifted sigmas, timesteps, Euler step.
