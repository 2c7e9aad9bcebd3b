//! The list of problems. Adding a problem = one module + one line in [`all`].

use crate::{Simulator, SolveError};

/// Every registered problem, in the order `pipeline list` shows them.
pub fn all() -> Vec<Box<dyn Simulator>> {
    use crate::synthetic::{Function, Synthetic};
    vec![
        Box::new(crate::burgers::BurgersFem::new()),
        Box::new(crate::poisson::Poisson::new()),
        Box::new(crate::heat::Heat::new()),
        Box::new(crate::plasmonic::Plasmonic::new()),
        Box::new(crate::plasmonic::Plasmonic::spectrum()),
        Box::new(crate::md::MolecularDynamics::new()),
        Box::new(crate::cem::Cem::new(crate::cem::Kind::Steady)),
        Box::new(crate::cem::Cem::new(crate::cem::Kind::Heat)),
        Box::new(crate::cem::Cem::new(crate::cem::Kind::Richards)),
        Box::new(Synthetic::new(Function::Borehole)),
        Box::new(Synthetic::new(Function::Currin)),
        Box::new(Synthetic::new(Function::Park)),
    ]
}

/// Look a problem up by name.
pub fn by_name(name: &str) -> Result<Box<dyn Simulator>, SolveError> {
    let sims = all();
    let known = sims.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ");
    sims.into_iter()
        .find(|s| s.name() == name)
        .ok_or(SolveError::UnknownProblem {
            name: name.to_string(),
            known,
        })
}
