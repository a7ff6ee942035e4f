//! The GPU runner side of a node: it acts on applied state, never on requests.

pub mod tokens;
