//! Fitted models kept: every model turns its fitted state into bytes and back
//! ([`crate::FusionModel::save_state`], [`crate::FusionModel::load_state`]).
//!
//! A state is the model's own serde data encoded as CBOR, which is exact for every f32 and
//! f64 (NaN and infinities included), so a restored model predicts bit for bit what it did
//! before it was saved. A burn network goes in as its parameter tensors, in visit order, each
//! named by its path in the module; it comes back as a network of the same shape rebuilt from
//! a few numbers ([`Rebuild`]) into which the saved tensors are put, names and shapes checked.
//! Everything about the model that is not fitted (its hyperparameters) is kept by the caller
//! next to the state; loading needs a model built with the same hyperparameters.

use crate::{FusionError, Result};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Encode the fitted state of `model` (`None`: not fitted yet).
pub fn save<T: Serialize>(model: &str, fitted: &Option<T>) -> Result<Vec<u8>> {
    let fitted = fitted.as_ref().ok_or(FusionError::NotFitted {
        model: model.into(),
    })?;
    let mut out = Vec::new();
    ciborium::into_writer(fitted, &mut out).map_err(|e| FusionError::State {
        model: model.into(),
        reason: format!("cannot encode the fitted state: {e}"),
    })?;
    Ok(out)
}

/// Decode a state that [`save`] wrote for `model`.
pub fn load<T: DeserializeOwned>(model: &str, bytes: &[u8]) -> Result<T> {
    ciborium::from_reader(bytes).map_err(|e| FusionError::State {
        model: model.into(),
        reason: format!("the saved state does not decode as this model's: {e}"),
    })
}

/// One parameter tensor of a network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedTensor {
    /// Its path in the module, e.g. `layers.0.weight`.
    pub path: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Every float parameter of `m`, in visit order.
pub fn tensors<M: Module>(m: &M) -> Vec<SavedTensor> {
    struct Collect {
        path: Vec<String>,
        out: Vec<SavedTensor>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.into());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val();
            let shape = t.dims().to_vec();
            let values = t
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("a float parameter converts to f32");
            self.out.push(SavedTensor {
                path: self.path.join("."),
                shape,
                values,
            });
        }
    }
    let mut c = Collect {
        path: Vec::new(),
        out: Vec::new(),
    };
    m.visit(&mut c);
    c.out
}

/// `m` with its float parameters replaced, in visit order, by `saved`; every path and shape
/// must match and every saved tensor be used.
pub fn apply<M: Module>(m: M, saved: &[SavedTensor]) -> std::result::Result<M, String> {
    struct Put<'a> {
        saved: &'a [SavedTensor],
        next: usize,
        path: Vec<String>,
        error: Option<String>,
    }
    impl ModuleMapper for Put<'_> {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.into());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let k = self.next;
            self.next += 1;
            if self.error.is_some() {
                return param;
            }
            let path = self.path.join(".");
            let Some(s) = self.saved.get(k) else {
                self.error = Some(format!("the saved network has no tensor for {path}"));
                return param;
            };
            let (id, current) = (param.id, param.val());
            if s.path != path || s.shape != current.dims().to_vec() {
                self.error = Some(format!(
                    "saved tensor {} {:?} does not fit parameter {path} {:?}",
                    s.path,
                    s.shape,
                    current.dims()
                ));
                return param;
            }
            let data = TensorData::new(s.values.clone(), s.shape.clone());
            Param::initialized(id, Tensor::from_data(data, &current.device()))
        }
    }
    let mut put = Put {
        saved,
        next: 0,
        path: Vec::new(),
        error: None,
    };
    let m = m.map(&mut put);
    if let Some(e) = put.error {
        return Err(e);
    }
    if put.next != saved.len() {
        return Err(format!(
            "the saved network has {} tensors, this one {}",
            saved.len(),
            put.next
        ));
    }
    Ok(m)
}

/// A burn network that can be rebuilt, empty, from a few numbers (its [`Rebuild::Dims`]) and
/// then given saved weights. [`crate::saved_net!`] gives such a type serde impls.
pub trait Rebuild: Module + Sized {
    type Dims: Serialize + DeserializeOwned;
    fn dims(&self) -> Self::Dims;
    /// A network with these dims; its weights are arbitrary (they are overwritten).
    fn blank(dims: &Self::Dims) -> Self;
}

/// The serde form of a [`Rebuild`] network.
#[derive(Serialize, Deserialize)]
pub struct SavedNet<D> {
    pub dims: D,
    pub tensors: Vec<SavedTensor>,
}

impl<D> SavedNet<D> {
    pub fn of<M: Rebuild<Dims = D>>(m: &M) -> Self {
        Self {
            dims: m.dims(),
            tensors: tensors(m),
        }
    }
    pub fn rebuild<M: Rebuild<Dims = D>>(&self) -> std::result::Result<M, String> {
        apply(M::blank(&self.dims), &self.tensors)
    }
}

/// Serialize and Deserialize for a [`Rebuild`] network, through [`SavedNet`].
#[macro_export]
macro_rules! saved_net {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                $crate::state::SavedNet::of(self).serialize(s)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                $crate::state::SavedNet::<<$t as $crate::state::Rebuild>::Dims>::deserialize(d)?
                    .rebuild()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}
