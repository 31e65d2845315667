//! [`CastFloats`]: cast a loaded module's float parameters to one dtype (e.g. bf16 on the CPU).

use burn::module::{ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor};

/// A module mapper that casts every float parameter to one dtype: `model.map(&mut
/// CastFloats(FloatDType::BF16))` holds the weights in bf16, as the CUDA build does, on any backend
/// that stores several float dtypes (burn Flex does), e.g. to test the bf16 path on the CPU.
#[derive(Debug, Clone, Copy)]
pub struct CastFloats(pub FloatDType);

impl<B: Backend> ModuleMapper<B> for CastFloats {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        Param::from_mapped_value(id, tensor.cast(self.0), mapper)
    }
}
