//! The scheduler's `scheduler_config.json`, deserialised as diffusers stores it.

use std::path::Path;

use serde::Deserialize;

use crate::SchedulerError;

/// How the dynamic (resolution-dependent) shift bends the sigmas; diffusers' `time_shift_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeShiftType {
    /// σ' = e^μ / (e^μ + (1/σ − 1)). What Qwen-Image uses.
    #[default]
    Exponential,
    /// σ' = μ / (μ + (1/σ − 1)).
    Linear,
}

/// `FlowMatchEulerDiscreteScheduler`'s config, as in a diffusers `scheduler/scheduler_config.json`.
///
/// Missing keys take the diffusers **class** defaults (e.g. `max_shift` 1.15, `max_image_seq_len`
/// 4096), which are *not* Qwen-Image's values: load the checkpoint's file, or use
/// [`SchedulerConfig::qwen_image`]. Unknown keys (`_class_name`, `_diffusers_version`) are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// Training timesteps; timesteps are σ · this.
    pub num_train_timesteps: u32,
    /// Static shift, used only when `use_dynamic_shifting` is false.
    pub shift: f64,
    /// Shift by μ computed from the image token count (Qwen-Image: true).
    pub use_dynamic_shifting: bool,
    /// μ at `base_image_seq_len` tokens.
    pub base_shift: f64,
    /// μ at `max_image_seq_len` tokens.
    pub max_shift: f64,
    /// Token count where μ = `base_shift`.
    pub base_image_seq_len: u64,
    /// Token count where μ = `max_shift` (μ keeps growing linearly beyond it: no clamp upstream).
    pub max_image_seq_len: u64,
    /// Stretch the shifted sigmas so that the last one equals this value; `None` or 0 disables it.
    pub shift_terminal: Option<f64>,
    /// Which dynamic shift formula to use.
    pub time_shift_type: TimeShiftType,
    /// Mochi's inverted schedule. Not supported (rejected by [`SchedulerConfig::validate`]).
    pub invert_sigmas: bool,
    /// Karras sigma spacing. Not supported.
    pub use_karras_sigmas: bool,
    /// Exponential sigma spacing. Not supported.
    pub use_exponential_sigmas: bool,
    /// Beta sigma spacing. Not supported.
    pub use_beta_sigmas: bool,
    /// Stochastic (re-noising) steps. Not supported.
    pub stochastic_sampling: bool,
}

impl Default for SchedulerConfig {
    /// The diffusers class defaults (not Qwen-Image's checkpoint values).
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            shift: 1.0,
            use_dynamic_shifting: false,
            base_shift: 0.5,
            max_shift: 1.15,
            base_image_seq_len: 256,
            max_image_seq_len: 4096,
            shift_terminal: None,
            time_shift_type: TimeShiftType::Exponential,
            invert_sigmas: false,
            use_karras_sigmas: false,
            use_exponential_sigmas: false,
            use_beta_sigmas: false,
            stochastic_sampling: false,
        }
    }
}

impl SchedulerConfig {
    /// The values of `Qwen/Qwen-Image/scheduler/scheduler_config.json`: dynamic exponential shift with
    /// μ from 0.5 (256 tokens) to 0.9 (8192 tokens) and `shift_terminal` 0.02.
    pub fn qwen_image() -> Self {
        Self {
            use_dynamic_shifting: true,
            max_shift: 0.9,
            max_image_seq_len: 8192,
            shift_terminal: Some(0.02),
            ..Self::default()
        }
    }

    /// Reads and validates a `scheduler_config.json`. Errors name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SchedulerError> {
        let path = path.as_ref();
        let config: Self = config_file::read_json(path).map_err(|e| match e {
            config_file::ConfigFileError::Read { path, error } => {
                SchedulerError::Read { path, error }
            }
            config_file::ConfigFileError::Parse { path, error } => {
                SchedulerError::Parse { path, error }
            }
        })?;
        config.checked(path)
    }

    /// Parses and validates the JSON text of a scheduler config.
    pub fn from_json_str(json: &str) -> Result<Self, SchedulerError> {
        let origin = Path::new("<json string>");
        let config: Self = serde_json::from_str(json).map_err(|error| SchedulerError::Parse {
            path: origin.to_path_buf(),
            error,
        })?;
        config.checked(origin)
    }

    /// `self` if [`Self::check`] passes; else the reason, naming `origin`.
    fn checked(self, origin: &Path) -> Result<Self, SchedulerError> {
        self.check()
            .map_err(|reason| SchedulerError::InvalidConfig {
                origin: origin.display().to_string(),
                reason,
            })?;
        Ok(self)
    }

    /// Checks that this port implements every option that is switched on, and that μ is computable.
    pub fn validate(&self) -> Result<(), SchedulerError> {
        self.check()
            .map_err(|reason| SchedulerError::InvalidConfig {
                origin: "in-memory config".to_owned(),
                reason,
            })
    }

    fn check(&self) -> Result<(), String> {
        let unsupported = [
            ("invert_sigmas", self.invert_sigmas),
            ("use_karras_sigmas", self.use_karras_sigmas),
            ("use_exponential_sigmas", self.use_exponential_sigmas),
            ("use_beta_sigmas", self.use_beta_sigmas),
            ("stochastic_sampling", self.stochastic_sampling),
        ];
        if let Some((name, _)) = unsupported.iter().find(|(_, on)| *on) {
            return Err(format!("`{name}: true` is not supported by this port"));
        }
        if self.num_train_timesteps == 0 {
            return Err("`num_train_timesteps` must be at least 1".to_owned());
        }
        if self.use_dynamic_shifting && self.base_image_seq_len == self.max_image_seq_len {
            // calculate_shift divides by their difference (a ZeroDivisionError upstream).
            return Err(format!(
                "`base_image_seq_len` and `max_image_seq_len` are both {}: μ is undefined",
                self.base_image_seq_len
            ));
        }
        let finite = [
            ("shift", self.shift),
            ("base_shift", self.base_shift),
            ("max_shift", self.max_shift),
            ("shift_terminal", self.shift_terminal.unwrap_or(0.0)),
        ];
        if let Some((name, value)) = finite.iter().find(|(_, v)| !v.is_finite()) {
            return Err(format!("`{name}` is {value}"));
        }
        Ok(())
    }

    /// μ for an image of `image_seq_len` packed tokens, from this config's shift range
    /// (what `QwenImagePipeline` passes to `set_timesteps`). See [`calculate_shift`](crate::calculate_shift).
    pub fn mu(&self, image_seq_len: usize) -> f64 {
        crate::calculate_shift(
            image_seq_len,
            self.base_image_seq_len,
            self.max_image_seq_len,
            self.base_shift,
            self.max_shift,
        )
    }
}
